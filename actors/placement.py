"""Ray resource requests for a model actor on a given device.

CUDA actors ask for a GPU; Apple-silicon actors ask for the custom ``mps``
resource, which a Mac advertises when it joins (``ray start ... --resources
'{"mps": 1}'``); CPU actors ask for CPUs only.
"""
from __future__ import annotations


def actor_options(device: str, num_cpus: float = 1.0) -> dict:
    """``.options(...)`` keyword arguments that place an actor on ``device``."""
    if device == "cuda":
        return {"num_gpus": 1, "num_cpus": num_cpus}
    if device == "mps":
        return {"resources": {"mps": 1}, "num_cpus": num_cpus}
    return {"num_cpus": num_cpus}


def cluster_devices() -> str:
    """The best device the connected cluster offers: ``cuda``, ``mps`` or ``cpu``."""
    import ray

    res = ray.cluster_resources()
    if res.get("GPU", 0) >= 1:
        return "cuda"
    if res.get("mps", 0) >= 1:
        return "mps"
    return "cpu"
