"""The README's hypervisor support matrix is the one the driver's capabilities generate."""
from __future__ import annotations

import dataclasses

from appliance.compute.driver import DriverCapabilities, HypervisorType
from appliance.compute.support_matrix import (
    COLUMNS, ROWS, capabilities, extract_block, readme_block)
from tests.daemon import ROOT


def test_readme_matrix_matches_driver_capabilities():
    block = extract_block((ROOT / "README.md").read_text())
    assert block is not None, "README.md lost its support-matrix block"
    assert block == readme_block(), (
        "README.md's support matrix drifted from the driver: run "
        "`monostack support-matrix --update-readme README.md`")


def test_every_capability_is_described_and_every_gap_explained():
    caps = capabilities()
    for f in dataclasses.fields(DriverCapabilities):
        assert f.name in ROWS, f"describe {f.name} in support_matrix.ROWS"
        _, why = ROWS[f.name]
        for hv, _label in COLUMNS:
            if not getattr(caps[hv], f.name):
                assert why.get(hv), f"say why {hv} lacks {f.name}"


def test_tcg_differs_from_kvm_only_by_the_host_cpu():
    caps = capabilities()
    kvm, tcg = dataclasses.asdict(caps[HypervisorType.KVM]), dataclasses.asdict(caps[HypervisorType.QEMU])
    assert {k for k in kvm if kvm[k] != tcg[k]} == {"supports_host_cpu"}
