"""Compact hash tables: values kept, growth past the planned size, 12-16 bytes a slot."""

import pytest

from teacherlm_core.hashset import HashTable, SeenIds, key_hash

pytestmark = pytest.mark.timeout(60)


def test_setdefault_keeps_the_first_value_and_get_finds_it_after_growth():
    table = HashTable(0, "uint32")  # planned for none: it grows from 1,024 slots
    hashes = [key_hash(f"text {i}") for i in range(3000)]
    assert [table.setdefault(h, i) for i, h in enumerate(hashes)] == list(range(3000))
    assert [table.setdefault(h, 99) for h in hashes[:5]] == [0, 1, 2, 3, 4]
    assert table.get(hashes[2999]) == 2999 and table.get(key_hash("absent")) is None
    assert table.count == 3000 and len(table.keys) == 8192  # load factor <= 2/3
    assert table.nbytes == 8192 * 12


def test_zero_is_refused_and_hashes_differ_by_salt():
    with pytest.raises(ValueError, match="key hash"):
        HashTable(10).setdefault(0, 1)
    assert key_hash("a") != key_hash("a", salt=b"exact") and key_hash("a") & 1


def test_seen_ids_size_is_planned_from_the_count():
    seen = SeenIds(250_000)
    assert seen.nbytes == (1 << 19) * 16  # 8 MiB for a 250,000-record shard
    assert seen.first_line("a", 7) == 7 and seen.first_line("a", 9) == 7
