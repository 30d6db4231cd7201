"""Training recipes for polisum, in the style of torchtune: one script per recipe, YAML configs.

    polisum train sft  --config exaone_1.2b_lora    --output-dir runs/sft    # training.sft
    polisum train kd   --config gemma2_2b_kd        --output-dir runs/kd     # training.kd
    polisum train sd35 --config sd35_medium_lora    --output-dir runs/sd35   # training.sd35
    polisum train merge --adapter runs/sft/adapter  --out models/merged      # training.merge

``python -m training.<recipe> --config ... --output-dir ...`` does the same from a checkout.
Configs are looked up as paths first, then by name under ``training/configs/``; the ones under
``configs/tiny/`` run the real code on tiny random models in minutes on a CPU. Every run writes
``run.json`` (config, package versions), ``metrics.jsonl`` (step, loss, eval_loss, lr),
``checkpoints/`` (``--resume`` continues from the last) and ``adapter/``.
"""
