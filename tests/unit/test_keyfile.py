"""API keys written for `make run` keep each other and are readable by their owner only."""

from __future__ import annotations

import stat

from shared.keyfile import save_key


def test_keys_are_kept_side_by_side_and_replaced_by_name(tmp_path):
    path = tmp_path / ".local" / "demo-keys.env"
    save_key(path, "COUNCIL_API_KEY", "sn_one")
    save_key(path, "PARTNER_API_KEY", "snp_two")
    save_key(path, "COUNCIL_API_KEY", "sn_three")
    assert path.read_text().splitlines() == ["PARTNER_API_KEY=snp_two", "COUNCIL_API_KEY=sn_three"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
