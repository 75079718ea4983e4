#!/usr/bin/env python3
"""moto's server, with four of its costs that grow with the data cut down to what AWS's
own operations cost, so that a load test measures the relay rather than the emulator.

    python tests/moto_server.py -H 127.0.0.1 -p PORT      (the arguments of moto_server)

1. TransactWriteItems deep-copies every table it names before it starts, to roll back on
   failure: about a second per transaction on a table of ~20,000 items. Here the backup holds
   only the items the transaction names (all a rollback can have changed); moto's own rollback
   code still runs, and the named items are then restored.
2. Query on a table's key lists and sorts every item of the table, then keeps the partition
   asked for. Here it is handed that partition only. (A query on an index still scans the
   table, as moto keeps no index.)
3. ReceiveMessage checks each message's retention through GetQueueAttributes, which counts
   the queue's messages: every receive is quadratic in the backlog. Here the check reads the
   queue's retention period alone.
4. SQS reads the clock through datetime arithmetic (about 10 µs a read) several times per
   queued message on every send and receive, to count the queue's messages. Here its clock
   reads the time directly (about 0.1 µs), the same instant.

What each operation does, accepts, refuses and returns is moto's, unchanged. When moto's
internals are not the ones this was written against, that change is left out and the server
says so on stderr.
"""

import copy
import sys
import threading

_in_narrow_transaction = threading.local()
_query_partition = threading.local()


def _narrow_transaction_backups():
    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    if not (hasattr(dynamodb_models, "copy") and hasattr(DynamoDBBackend, "transact_write_items")
            and hasattr(Table, "get_item") and hasattr(Table, "delete_item")):
        return False
    original = DynamoDBBackend.transact_write_items

    class CopyInTransaction:
        """The module's `copy`, with a table "copied" as itself while a narrowed transaction
        runs (the named items are backed up separately); every other copy is the real one."""

        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value, *args, **kwargs):
            if isinstance(value, Table) and getattr(_in_narrow_transaction, "on", False):
                return value
            return copy.deepcopy(value, *args, **kwargs)

    def named_items(backend, transact_items):
        backups = []
        for entry in transact_items:
            operation = next(iter(entry.values()))
            table = backend.tables.get(operation.get("TableName"))
            if table is None:
                continue
            key = operation.get("Key") or operation.get("Item") or {}
            if table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = None
            if table.range_key_attr:
                if table.range_key_attr not in key:
                    continue
                range_value = DynamoType(key[table.range_key_attr])
            item = table.get_item(hash_value, range_value)
            backups.append((table, hash_value, range_value, copy.deepcopy(item)))
        return backups

    def restore(backups):
        for table, hash_value, range_value, item in reversed(backups):
            if item is None:
                table.delete_item(hash_value, range_value)
            elif range_value is not None:
                table.items.setdefault(hash_value, {})[range_value] = item
            else:
                table.items[hash_value] = item

    def transact_write_items(self, transact_items):
        try:
            backups = named_items(self, transact_items)
        except Exception:  # an odd request: moto's own path validates it and answers
            return original(self, transact_items)
        _in_narrow_transaction.on = True
        try:
            return original(self, transact_items)
        except BaseException:
            restore(backups)
            raise
        finally:
            _in_narrow_transaction.on = False

    dynamodb_models.copy = CopyInTransaction()
    DynamoDBBackend.transact_write_items = transact_write_items
    return True


def _query_one_partition():
    from moto.dynamodb.models.table import Table

    if not (hasattr(Table, "query") and hasattr(Table, "all_items")):
        return False
    original_query, original_all_items = Table.query, Table.all_items

    def all_items(self):
        if getattr(_query_partition, "table", None) is self:
            partition = self.items.get(_query_partition.hash_key)
            if partition is None:
                return []
            return list(partition.values()) if self.range_key_attr else [partition]
        return original_all_items(self)

    def query(self, hash_key, *args, **kwargs):
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        _query_partition.table, _query_partition.hash_key = self, hash_key
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _query_partition.table = None

    Table.all_items, Table.query = all_items, query
    return True


def _retention_without_counting():
    import moto.sqs.models as sqs_models
    from moto.sqs.models import SQSBackend

    if not (hasattr(SQSBackend, "is_message_valid_based_on_retention_period")
            and hasattr(sqs_models, "unix_time")):
        return False
    original = SQSBackend.is_message_valid_based_on_retention_period

    def is_message_valid_based_on_retention_period(self, queue_name, message):
        retention = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if retention is None:
            return original(self, queue_name, message)
        return int(retention) + message.sent_timestamp / 1000 > sqs_models.unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    return True


def _direct_clock():
    import time

    import moto.sqs.models as sqs_models

    if not (hasattr(sqs_models, "unix_time_millis") and hasattr(sqs_models, "unix_time")):
        return False
    original_millis, original_secs = sqs_models.unix_time_millis, sqs_models.unix_time

    def unix_time_millis(dt=None):
        return time.time() * 1000.0 if dt is None else original_millis(dt)

    def unix_time(dt=None):
        return time.time() if dt is None else original_secs(dt)

    sqs_models.unix_time_millis, sqs_models.unix_time = unix_time_millis, unix_time
    return True


CHANGES = {
    "transactions back up the items they name": _narrow_transaction_backups,
    "a key query reads its partition": _query_one_partition,
    "receive checks retention without counting messages": _retention_without_counting,
    "SQS reads the clock directly": _direct_clock,
}


def apply_changes():
    """Applies each change; returns the names of those left out."""
    left_out = []
    for name, change in CHANGES.items():
        try:
            applied = change()
        except Exception as e:  # moto moved things: leave this one out
            print(f"moto_server.py: {name}: {e!r}", file=sys.stderr)
            applied = False
        if not applied:
            left_out.append(name)
    return left_out


def main():
    for name in apply_changes():
        print(f"moto_server.py: moto's internals differ, left out: {name}; running moto's "
              "own code there", file=sys.stderr, flush=True)
    from moto.server import main as moto_main

    return moto_main()


if __name__ == "__main__":
    sys.exit(main())
