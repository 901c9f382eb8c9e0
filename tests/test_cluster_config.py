"""ray_cluster.yaml is a valid cluster-launcher file for the local (on-premise) provider."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_ray_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((ROOT / "ray_cluster.yaml").read_text()))
    validate_config(config)  # raises on a schema error
    assert config["provider"]["type"] == "local"
    assert len(config["provider"]["worker_ips"]) == config["max_workers"]
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1" in starts  # Macs can join
    assert "PYTORCH_ENABLE_MPS_FALLBACK=1" in starts
