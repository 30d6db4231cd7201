"""One router per resource; ``polisum.serve.app`` includes them under ``/v1``."""
