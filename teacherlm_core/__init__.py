"""teacherlm: TeacherLM augmentation as a Kubernetes-native batch system.

The library holds all logic; ``components/`` and ``pipelines/`` only wrap it for Kubeflow
Pipelines. Heavy dependencies (torch, vllm, deepspeed) are imported inside functions so that
``import teacherlm_core`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

from .redaction import install as _install_redaction

_install_redaction()  # no secret in any log line or traceback of a process that imports teacherlm_core
