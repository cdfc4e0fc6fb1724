"""The key layout: every Redis key name the stores use, and every key list a script is given, for
both topologies. One Redis and a Redis Cluster differ only by parameters (a cluster splits the
expiry schedule in shards and keeps each folder's sub-folder set in its index's hash slot), not
by two copies. The store classes ask the layout; nothing else spells a key.

Layout (every key starts with the configurable namespace `ns`, default "ts"):

- `ns:t:{path}`: one string per thing, `version (16 chars) + JSON`, with the thing's lifetime as
  the key's own expiry. One key per thing keeps memory close to plain strings and makes every
  single-thing operation touch one Redis Cluster hash slot (the braces are the hash tag).
- `ns:f:{folder}`: a sorted set per folder, all scores 0, members the names directly inside it
  ("c" for a thing, "b/" for a sub-folder), so a listing page is a ZRANGE BYLEX, whatever the
  size of the store.
- `ns:f:{folder}:sub`: beside each folder's index, a sorted set (all scores 0) of its sub-folders'
  names only, so that its things alone can be counted and ranked by name in O(log n) (a query
  by `$name`, `count=true`: store/querying.py). Kept by the scripts that add or remove a folder
  index entry, only when a sub-folder's entry really comes or goes (scripts/folders.lua); a
  folder without sub-folders has none. On a cluster, when that name would hash elsewhere than
  the index (an empty hash tag: the top level `ns:f:{}`, a folder starting with `}`), it is
  `ns:fsub:{tag}:{folder}` with a tag picked to land in the index's slot (subfolders_key).
  `ns:subfolders:ready` says every folder's set is complete (`ns:subfolders:lease`: who builds
  them): a store written by an earlier version gets them from a one-time walk of its folder
  indexes (Querying.build_subfolder_sets, which names those two keys).
- `ns:x`: the expiry schedule, a sorted set of every thing's path scored by when its lifetime
  ends (unix ms), kept by the same scripts that write and delete things. Each service process
  reaps what is due every half second (live.expiry), so an expired thing leaves listings
  and reaches watchers as an `expire` event within about a second, whatever the store's size:
  Redis's own expiry finds keys only at its pace (a few hundred a second among many long-lived
  ones). On a Redis Cluster it is split in SCHEDULE_SHARDS sorted sets `ns:x:{shard}`, a
  thing's shard the CRC-32 of its path (schedule_key).
- `ns:feed`: the change feed, a stream of `put`, `patch`, `delete` and `expire` events (and
  `reset` markers on a cluster), trimmed to about the retention asked for.
- `ns:k`: API keys, a hash from key id to its record (JSON: sha256 of the key, scope, prefix,
  created); `ns:k:used` a hash from key id to when it was last used (unix seconds). The key
  itself is never stored. A handful of keys per store, so one hash each is enough.
  `ns:k:closed`: set when a key is first created (or any is revoked) and never expires: a store
  that has had a key stays closed after its last key is revoked, until `thingstash keys
  reopen` deletes it.
- `ns:rl:...`: the rate limiter's counters (written by the `limits` library, through the
  storage URI and prefix that `limiter_storage()` gives it: limiter_prefix).
- `ns:ix:{d}` (the index declarations), `ns:ix:{d}:gen` (their generation), `ns:ix:lease:{id}`,
  `ns:q:{id:folder}` and `ns:qm:{id:folder}` (a query index's sorted set and its hash): named
  by IndexKeeper (store/indexes.py), which owns the query indexes.

Lua scripts (scripts/*.lua) are given their keys in KEYS, in the order each script's header
states; the lists are made here (write_keys, prune_keys, purge_keys). One convention lives in
the scripts' prelude (scripts/folders.lua): a folder index's sub-folder set is the index's key
and SUBFOLDERS_SUFFIX unless the caller passes another key (a cluster's `ns:fsub:...`). And
list.lua, which learns the things' names only from the index, makes their keys from
thing_key_head and folder_key_head (one Redis only: a cluster lists another way).
"""

from __future__ import annotations

import zlib

from redis.crc import key_slot

from thingstash.store.common import ancestry

# A folder's sub-folder set is named after its index: `ns:f:{folder}` and this (folders.lua).
SUBFOLDERS_SUFFIX = ":sub"
# Shards of the expiry schedule on a cluster: each a sorted set in a slot of its own, so the
# reaper reads them all in one pipelined batch (one round trip per node), and one settle.lua
# call per shard.
SCHEDULE_SHARDS = 16


def _slot(key: str) -> int:
    return int(key_slot(key.encode("utf-8", "surrogatepass")))


class Layout:
    """The keys of one namespace: `cluster` shards the expiry schedule and keeps every
    sub-folder set in its folder index's slot."""

    def __init__(self, prefix: str, cluster: bool = False) -> None:
        self.prefix = prefix
        self.cluster = cluster
        self.schedule_shards = SCHEDULE_SHARDS if cluster else 1
        self.feed_key = f"{prefix}:feed"
        self.turn_key = f"{prefix}:turn"  # the judged writes' turn (turn.py)
        self.keys_key = f"{prefix}:k"
        self.keys_used_key = f"{prefix}:k:used"
        self.closed_key = f"{prefix}:k:closed"
        self.limiter_prefix = f"{prefix}:rl"
        self._subfolder_keys: dict[str, str] = {}  # folder -> its set's key, when not the usual

    # -- things and folders -------------------------------------------------------------------

    def thing_key(self, path: str) -> str:
        return f"{self.prefix}:t:{{{path}}}"

    def thing_key_head(self, folder: str) -> str:
        """What the keys of the things in `folder` start with: thing_key(folder + name) is
        this, the name and a closing brace (list.lua makes them so)."""
        return f"{self.prefix}:t:{{{folder}"

    def path_of_thing_key(self, key: bytes) -> str | None:
        """The path of a thing key of this namespace, None for any other key."""
        head = f"{self.prefix}:t:{{".encode()
        if not key.startswith(head) or not key.endswith(b"}"):
            return None
        try:
            return key[len(head) : -1].decode("utf-8")
        except UnicodeDecodeError:
            return None

    def folder_key(self, folder: str) -> str:
        return f"{self.prefix}:f:{{{folder}}}"

    def folder_key_head(self, folder: str) -> str:
        """A sub-folder's index key without the sub-folder's name and the closing brace
        (list.lua, as thing_key_head)."""
        return self.folder_key(folder)[:-1]

    def subfolders_key(self, folder: str) -> str:
        """The folder's sub-folder set: its index's key and a suffix, so the same hash slot
        (the hash tag lies within the index's key); scripts/folders.lua names it alike. On a
        cluster, not when the index's hash tag is empty (`ns:f:{}`, the top level; a folder
        starting with `}`), so that the whole key is hashed: then a key of its own, with a hash
        tag picked to land in the index's slot."""
        index = self.folder_key(folder)
        key = index + SUBFOLDERS_SUFFIX
        if not self.cluster or _slot(key) == _slot(index):
            return key
        found = self._subfolder_keys.get(folder)
        if found is None:
            slot = _slot(index)
            tag = 0
            while _slot(f"{self.prefix}:fsub:{{{tag}}}") != slot:
                tag += 1  # (16,384 slots: about as many tries, under 10 ms)
            found = self._subfolder_keys[folder] = f"{self.prefix}:fsub:{{{tag}}}:{folder}"
        return found

    def subfolders_of(self, index: str) -> str:
        """The sub-folder set of the folder index `index` (a key folder_key made)."""
        head = f"{self.prefix}:f:{{"
        return self.subfolders_key(index[len(head) : -1])

    def ancestry_keys(self, path: str) -> list[tuple[str, str]]:
        """(folder index key, name in it) for every level above `path`, its parent first."""
        return [(self.folder_key(folder), name) for folder, name in ancestry(path)]

    # -- the expiry schedule ------------------------------------------------------------------

    def schedule_key(self, path: str) -> str:
        """The expiry schedule (the shard holding `path`'s entry, on a cluster)."""
        if not self.cluster:
            return f"{self.prefix}:x"
        shard = zlib.crc32(path.encode("utf-8", "surrogatepass")) % self.schedule_shards
        return f"{self.prefix}:x:{{{shard}}}"

    def schedule_keys(self) -> list[str]:
        """Every shard of the expiry schedule (the one sorted set, on one Redis)."""
        if not self.cluster:
            return [f"{self.prefix}:x"]
        return [f"{self.prefix}:x:{{{shard}}}" for shard in range(self.schedule_shards)]

    # -- key lists for scripts ----------------------------------------------------------------

    def write_keys(self, path: str) -> tuple[list[str], list[str]]:
        """KEYS and the index names for put.lua, delete.lua and expire.lua: thing, feed, expiry
        schedule, then the folder indexes (parent first); the names, one per index."""
        keys = [self.thing_key(path), self.feed_key, self.schedule_key(path)]
        names = []
        for folder, name in ancestry(path):
            keys.append(self.folder_key(folder))
            names.append(name)
        return keys, names

    def prune_keys(self, folder: str) -> tuple[list[str], list[str]]:
        """KEYS and ARGV for prune.lua: the folder's index, then those above it (parent
        first); the folder's name in each."""
        keys = [self.folder_key(folder)]
        names = []
        for parent, name in ancestry(folder):
            keys.append(self.folder_key(parent))
            names.append(name)
        return keys, names

    def purge_keys(self, folder: str, things: list[str]) -> tuple[list[str], list[str]]:
        """KEYS for purge.lua (the folder's index, feed, schedule, the things' keys, the indexes
        above the folder's) and the folder's name in each of those above."""
        above = list(ancestry(folder))
        keys = [
            self.folder_key(folder),
            self.feed_key,
            self.schedule_key(folder),
            *(self.thing_key(folder + name) for name in things),
            *(self.folder_key(parent) for parent, _ in above),
        ]
        return keys, [name for _, name in above]
