"""A CPU's name carries its vector unit, and records made before it did get theirs from their session.

Records here are written by the test (configs, environments and four zero predictions): they stand for
sessions on the two processor classes the sweeps have run on."""
import json

import numpy as np

from backbone_bench.environment import cpu_isa, device_name, processor, tagged
from backbone_bench.study import hosts, store

ZEN4 = "fpu sse2 avx avx2 fma avx512f avx512dq avx512_bf16 avx512_vnni"
ZEN3 = "fpu sse2 avx avx2 fma sha_ni vaes"


def test_the_cpu_name_carries_the_widest_vector_unit():
    import torch

    assert cpu_isa(ZEN4) == "AVX-512 BF16" and cpu_isa(ZEN3) == "AVX2"
    assert cpu_isa("avx2 avx512f amx_bf16 avx512_bf16") == "AMX" and cpu_isa("avx2 avx512f") == "AVX-512"
    assert cpu_isa("fpu sse2") == "" and tagged("AMD EPYC", "") == "AMD EPYC"
    name = device_name(torch.device("cpu"))
    assert name.startswith("CPU ") and name.endswith(f" x{torch.get_num_threads()} threads")
    assert f"({cpu_isa()})" in name if cpu_isa() else "(" not in name
    assert processor("CPU AMD EPYC (AVX2) x2 threads") == "CPU AMD EPYC (AVX2)"


def record(backbone, at, precision="fp32", device="CPU AMD EPYC x2 threads", seed=0):
    config = dict(dataset="uc_merced", backbone=backbone, mode="finetune", shots=10, seed=seed, recipe={})
    return dict(key=store.config_key(config), preset="cpu", config=config, status="ok", collapsed=False,
                subset_shared=False, effective_shots=10, finished_at=f"2026-12-{at}:00+00:00",
                environment=dict(device=device, device_type="cpu", precision=precision))


def test_a_session_names_its_processor_by_the_speed_path_its_runs_took():
    zen4 = [record("mobilenetv2_100", "02T12:38", "bf16-autocast"), record("tf_efficientnet_lite0", "02T12:50"),
            record("regnetx_002", "02T13:10", "bf16-autocast")]
    zen3 = [record("tf_efficientnet_lite1", "03T06:00"), record("regnetx_002", "03T06:20", seed=1)]
    silent = [record("tf_efficientnet_lite2", "03T09:00")]  # no witness: keeps its name
    before = [record("mobilenetv2_100", "01T10:00", seed=2)]  # before the speed path: fp32 proves nothing
    mixed = [record("mobilenetv2_100", "03T20:00", "bf16-autocast", seed=3), record("regnetx_002", "03T20:05", seed=3)]
    intel = [record("mobilenetv2_100", "04T10:00", "bf16-autocast", "CPU Intel Xeon x2 threads", seed=4)]
    since = [record("tf_efficientnet_lite0", "04T20:00", seed=5),  # made by old code, then the sweep restarted
             record("tf_efficientnet_lite1", "04T20:04", device="CPU AMD EPYC (AVX2) x2 threads", seed=5)]
    found = hosts.inferred(zen4 + zen3 + silent + before + mixed + intel + since)
    assert {found[r["key"]][0] for r in zen4} == {"CPU AMD EPYC (AVX-512 BF16) x2 threads"}
    assert {found[r["key"]][0] for r in zen3} == {"CPU AMD EPYC (AVX2) x2 threads"}
    assert found[zen4[1]["key"]][1].startswith("inferred from its session (2026-12-02T12:38 to 13:10 UTC): 2 runs of "
                                               "mobilenetv2_100 and regnetx_002 computed in bf16 autocast")
    assert not {r["key"] for r in silent + before + mixed + intel} & set(found)
    assert found[since[0]["key"]] == ("CPU AMD EPYC (AVX2) x2 threads", "inferred from its session (2026-12-04T20:00 to "
                                      "20:04 UTC): 1 runs were made since device names carry the class and name it")
    assert since[1]["key"] not in found


def test_the_table_rebuild_writes_the_class_once_and_keeps_the_name_recorded(tmp_path):
    rows = [record("mobilenetv2_100", "02T12:38", "bf16-autocast"), record("tf_efficientnet_lite0", "02T12:50")]
    for r in rows:
        store.write_record(r, dict(test_pred=np.zeros(4, np.int8)), results=tmp_path)
    table = store.compile_table(tmp_path)
    assert set(table["device"]) == {"CPU AMD EPYC (AVX-512 BF16) x2 threads"}
    assert set(table["device_as_recorded"]) == {"CPU AMD EPYC x2 threads"}
    files = sorted((tmp_path / "runs").glob("*.json"))
    written = [f.read_bytes() for f in files]
    assert json.loads(written[0])["environment"]["device_from"].startswith("inferred from its session")
    store.compile_table(tmp_path)  # again: nothing left to infer, no record rewritten
    assert [f.read_bytes() for f in files] == written


def test_every_cpu_edition_record_names_its_processor_class():
    from conftest import REPO

    cpu = [r for r in store.read_records(REPO / "results")
           if r.get("preset") == "cpu" and r["environment"]["device_type"] == "cpu"]
    from backbone_bench.environment import ISA

    classes = tuple(f"({name}) x2 threads" for _, name in ISA)  # AMX, AVX-512 BF16, AVX-512, AVX2
    assert all(r["environment"]["device"].endswith(classes) for r in cpu)
