"""Listening for expiries, the one home for both topologies: turning Redis's expiry notifications
on, hearing them (on one Redis, one subscription; on a cluster, one per node, since a node
publishes only its own keys' expiries), and waking a listener to stop. live.expiry records
what is heard (Store.record_expiries)."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from redis.client import PubSub
from redis.cluster import RedisCluster
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from thingstash.core.model import StorageUnavailable
from thingstash.store.base import StoreBase
from thingstash.store.common import (
    CONNECT_TIMEOUT_S,
    EXPIRED_BATCH,
    REPLY_TIMEOUT_S,
    UNAVAILABLE_OR_OS_ERRORS,
    ensure_expiry_notifications,
)

_NODES_REFRESH_S = 5.0  # how often the expiry listener looks for new or returning nodes
_POLL_S = 0.05  # per node and turn: a turn over 6 nodes takes about 0.3 s when all is quiet


class ExpiryListening(StoreBase):
    """Expiry notifications on one Redis (a mixin of RedisStore)."""

    def enable_expiry_notifications(self) -> bool:
        """Make sure Redis publishes expiry events ("Ex"); turn them on when allowed.
        False when they are off and cannot be turned on (CONFIG refused, e.g. on a managed
        Redis): expiries then reach listings lazily, and watchers only through them."""
        try:
            ensure_expiry_notifications(self.client)
            return True
        except redis.RedisError:
            return False

    def expiry_channel(self) -> str:
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        return f"__keyevent@{db}__:expired"

    def expired_paths(
        self, pubsub: redis.client.PubSub, wait: float, wake_channel: str
    ) -> list[str]:
        """The paths of the things expired in the notifications waiting on `pubsub` (up to
        EXPIRED_BATCH, waiting up to `wait` for the first): they come in bursts, and each
        process hears every one (the reaper's too), so they are handled a batch at a time."""
        paths: list[str] = []
        message = pubsub.get_message(timeout=wait)
        while message is not None and len(paths) < EXPIRED_BATCH:
            if message["channel"] != wake_channel.encode():
                path = self.layout.path_of_thing_key(message["data"])
                if path is not None:
                    paths.append(path)
            message = pubsub.get_message(timeout=0)
        return paths

    def listen_expired(
        self,
        handle: Callable[[list[str]], None],
        stopped: Callable[[], bool],
        wake_channel: str,
    ) -> None:
        """Call `handle(paths)` with the things of this namespace that expire, a batch at a
        time, until `stopped()`; a message on `wake_channel` makes it look at `stopped()` at
        once. Reconnects by itself when Redis goes away."""
        while not stopped():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.expiry_channel(), wake_channel)
                while not stopped():
                    paths = self.expired_paths(pubsub, 5.0, wake_channel)
                    if paths:
                        handle(paths)
            except (ConnectionError, TimeoutError, BusyLoadingError, OSError, StorageUnavailable):
                if not stopped():
                    time.sleep(0.5)
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass

    def wake(self, channel: str) -> None:
        try:
            self.client.publish(channel, b"")
        except redis.RedisError:
            pass


class ClusterExpiryListening(ExpiryListening):
    """Expiry notifications on a cluster: every node listened to (a mixin of ClusterStore)."""

    client: RedisCluster  # type: ignore[assignment]

    def enable_expiry_notifications(self) -> bool:
        """On every node, replicas included: a replica promoted by a failover must publish
        expiries as its primary did."""
        try:
            for node in self.client.get_nodes():
                connection = node.redis_connection
                if connection is None:
                    continue
                ensure_expiry_notifications(connection)
            return True
        except redis.RedisError:
            return False

    def expiry_channel(self) -> str:
        return "__keyevent@0__:expired"  # a cluster has only database 0

    def listen_expired(
        self,
        handle: Callable[[list[str]], None],
        stopped: Callable[[], bool],
        wake_channel: str,
    ) -> None:
        """Expiry events are published by the node where the key expired, to its own
        subscribers only: listen on every node (replicas too, so the one promoted by a failover
        is already listened to), and look for new or returning nodes now and then."""
        listeners: dict[str, PubSub] = {}
        refreshed = 0.0
        try:
            while not stopped():
                if time.monotonic() - refreshed > _NODES_REFRESH_S or not listeners:
                    refreshed = time.monotonic()
                    self._listen_to_new_nodes(listeners, wake_channel)
                    if not listeners:
                        time.sleep(0.5)
                        continue
                for name, pubsub in list(listeners.items()):
                    try:
                        paths = self.expired_paths(pubsub, _POLL_S, wake_channel)
                    except UNAVAILABLE_OR_OS_ERRORS:
                        listeners.pop(name)
                        _close_quietly(pubsub)
                        continue
                    if paths:
                        handle(paths)
        finally:
            for pubsub in listeners.values():
                _close_quietly(pubsub)

    def _listen_to_new_nodes(self, listeners: dict[str, PubSub], wake_channel: str) -> None:
        try:
            nodes = [
                (f"{host}:{port}", host, port)
                for host, port in _cluster_nodes(self.client)
                if f"{host}:{port}" not in listeners
            ]
        except UNAVAILABLE_OR_OS_ERRORS:
            return
        kwargs = self.client.get_default_node().redis_connection.get_connection_kwargs()
        for name, host, port in nodes:
            node_client = redis.Redis(
                host=host,
                port=port,
                username=kwargs.get("username"),
                password=kwargs.get("password"),
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=REPLY_TIMEOUT_S,  # SUBSCRIBE to a frozen node must not hang
            )
            pubsub = node_client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.expiry_channel(), wake_channel)
            except UNAVAILABLE_OR_OS_ERRORS:
                _close_quietly(pubsub)
                node_client.close()
                continue
            listeners[name] = pubsub


def _cluster_nodes(client: RedisCluster) -> list[tuple[str, int]]:
    """Every node (host, port) the cluster knows now, asked of a node that answers."""
    nodes = client.cluster_nodes()
    return [
        (address.split(":")[0], int(address.split(":")[1].split("@")[0]))
        for address, info in nodes.items()
        if "fail" not in str(info.get("flags", "")) and info.get("connected", True)
    ]


def _close_quietly(pubsub: PubSub) -> None:
    try:
        pubsub.close()
    except (redis.RedisError, OSError):
        pass
