"""The Ray pipeline on a multi-node cluster (three Ray nodes on this machine).

Separator windows are independent, so they may run on any node; the file must
not change.  ``ray.cluster_utils.Cluster`` starts real raylets and object
stores per node; objects cross nodes exactly as between machines.
"""
from __future__ import annotations

import numpy as np
import ray

from engine.separation import n_windows
from resonate_stream.ray_pipeline import SeparatorPool, ray_pipeline_factory


def test_windows_run_on_several_nodes_and_the_file_is_unchanged(ray_cluster, dsp_settings, concert_clip, restore,
                                                               local_reference):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 3
    pool = SeparatorPool(dsp_settings.separation, n_actors=3, threads=1)
    try:
        nodes = pool.node_ids()
        got = restore(concert_clip, dsp_settings, ray_pipeline_factory(pool))
        windows = list(pool.windows_per_actor)
    finally:
        pool.shutdown()
    assert len(set(nodes)) == 3  # one actor per node (1 CPU each, spread)
    assert all(n > 0 for n in windows), windows  # and every node separated windows
    assert sum(windows) == n_windows(got.master.shape[1], pool.geometry["geometry"].stride)

    ref = local_reference(concert_clip, dsp_settings)
    assert got.master_bytes == ref.master_bytes
    for name, stem in ref.stems.items():
        assert np.array_equal(got.stems[name], stem), name
