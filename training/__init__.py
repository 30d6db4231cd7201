"""Training recipes for polisum, in the style of torchtune: one file per recipe, YAML configs.

    polisum train sft  --config exaone_1.2b_lora    --output-dir runs/sft    # training.sft
    polisum train kd   --config gemma2_2b_kd        --output-dir runs/kd     # training.kd
    polisum train sd35 --config sd35_medium_lora    --output-dir runs/sd35   # training.sd35
    polisum train merge --adapter runs/sft/adapter  --out models/merged      # training.merge

``python -m training.<recipe> --config ... --output-dir ...`` does the same from a checkout, and
``training.<recipe>.run(config, output_dir, ["training.max_steps=3"])`` from Python. Configs are
looked up as paths first, then by name under ``training/configs/``; the ones under
``configs/tiny/`` run the real code on tiny random models in minutes on a CPU. Every run writes
``run.json`` (config, package versions), ``metrics.jsonl`` (step, loss, eval_loss, lr),
``checkpoints/`` (``--resume`` continues from the last) and ``adapter/``.

Each recipe file holds its config schema and its steps; the rest is a small library:
:mod:`training.config` (YAML onto dataclass schemas with OmegaConf: types checked, ``${...}``
interpolation, ``key=value`` overrides), :mod:`training.recipe` (the run folder, run.json,
resume, seeding, ``run``/``main``), :mod:`training.hf` and :mod:`training.chat` (transformers
pieces of the text recipes), :mod:`training.distill` and :mod:`training.logits` (distillation),
:mod:`training.diffusion` (pieces of the diffusion recipe) and :mod:`training.tiny`.
"""
