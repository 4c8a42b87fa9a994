"""``core.backup``: is there room for one more backup? Pure arithmetic and the refusal's words."""

from __future__ import annotations

import pytest

from tradewise_ops.core.backup import (
    GROWTH_HEADROOM,
    BackupRecord,
    Fingerprint,
    claim_space,
    directory_space,
    refuse_claim_space,
    refuse_directory_space,
)
from tradewise_ops.core.units import format_bytes
from tradewise_ops.errors import BadInputError

MiB, GiB = 2**20, 2**30


def record(size: int) -> BackupRecord:
    return BackupRecord(
        "tradewise-20250301T020000Z.dump", "postgres", "", "", size, "", Fingerprint({}, {})
    )


def test_format_bytes_in_binary_units() -> None:
    assert format_bytes(812) == "812 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(10 * GiB) == "10.0 GiB"
    assert format_bytes(3 * 2**50) == "3.0 PiB"
    assert format_bytes(5 * 2**60) == "5120.0 PiB"


def test_the_last_backup_is_the_estimate_with_headroom_for_growth() -> None:
    check = directory_space(100 * MiB, 900 * MiB, record(40 * MiB))
    assert check is not None
    assert check.needed == int(40 * MiB * (1 + GROWTH_HEADROOM)) + 1
    assert check.fits and "the last backup, tradewise-20250301T020000Z.dump" in check.basis
    tight = directory_space(44 * MiB, None, record(40 * MiB))
    assert tight is not None and not tight.fits  # 40 MiB plus 10% does not fit in 44 MiB


def test_without_a_backup_the_database_size_is_the_estimate() -> None:
    check = directory_space(5 * MiB, 7 * MiB, None)
    assert check is not None and check.needed == 7 * MiB and not check.fits
    assert check.basis == "the database takes 7.0 MiB"
    assert directory_space(5 * MiB, 5 * MiB, None).fits  # type: ignore[union-attr]
    assert directory_space(5 * MiB, None, None) is None  # nothing to estimate from
    assert directory_space(1, None, record(0)) is None  # an empty record says nothing


def test_refusing_a_directory_is_one_sentence_with_sizes_and_what_to_do() -> None:
    refuse_directory_space(None, "/b", "db")  # unknown: no refusal
    refuse_directory_space(directory_space(GiB, 7 * MiB, None), "/b", "db")  # fits
    with pytest.raises(BadInputError) as caught:
        refuse_directory_space(directory_space(3 * MiB, 7 * MiB, None), "/srv/backups", "pg")
    message = caught.value.message
    assert message.startswith("no room for a backup of pg in /srv/backups: 3.0 MiB free, ")
    assert "about 7.0 MiB needed (the database takes 7.0 MiB)" in message
    assert "--dir on a larger filesystem" in message and "--force" in message
    assert message.endswith("nothing was written") and "\n" not in message
    assert caught.value.exit_code == 2


def test_the_claim_holds_keep_dumps_plus_the_new_one() -> None:
    assert claim_space(10 * GiB, 7, None) is None  # no backup recorded yet
    check = claim_space(10 * GiB, 7, ("tradewise-20250301T020000Z.dump", GiB + GiB // 4))
    assert check is not None
    assert check.needed == 8 * (GiB + GiB // 4) and check.available == 10 * GiB
    assert check.fits  # exactly 10 GiB
    over = claim_space(10 * GiB, 7, ("tradewise-20250301T020000Z.dump", 2 * GiB))
    assert over is not None and not over.fits
    with pytest.raises(BadInputError) as caught:
        refuse_claim_space(over, "prod", "tradewise-backups")
    message = caught.value.message
    assert message.startswith("the backups volume tradewise-backups of prod (10.0 GiB) is too ")
    assert "16.0 GiB needed (backups.keep 7 dumps plus the new one, about 2.0 GiB each" in message
    assert "environments.prod.backups.storage" in message and "backups.keep" in message
    assert message.endswith("no Job was created") and caught.value.exit_code == 2
    refuse_claim_space(check, "prod", "tradewise-backups")  # fits: no refusal
