"""tests/moto_server.py: moto with four costs that grow with the data cut down. Transactions,
queries and receives answer as moto's own do; no table is copied per transaction."""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import free_port, wait_until

LAUNCHER = Path(__file__).resolve().parent / "moto_server.py"


def create_table(client):
    client.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    stderr_path = tmp_path_factory.mktemp("moto") / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, str(LAUNCHER), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}",
                              region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")

        def created():
            try:
                create_table(client)
                return True
            except Exception:
                return False

        wait_until(created, timeout=30, message="moto_server.py answering")
        assert "left out" not in stderr_path.read_text(), stderr_path.read_text()
        yield client, port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def table(server):
    return server[0]


def key(pk, sk):
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def item(client, pk, sk):
    return client.get_item(TableName="t", Key=key(pk, sk), ConsistentRead=True).get("Item")


def put(pk, sk, **extra):
    return {"Put": {"TableName": "t", "Item": {**key(pk, sk), **extra}}}


def test_a_transaction_is_applied_whole(table):
    table.transact_write_items(TransactItems=[put("a", "1", n={"N": "1"}), put("a", "2")])
    assert item(table, "a", "1")["n"] == {"N": "1"}
    assert item(table, "a", "2") is not None


def test_a_failed_condition_rolls_back_every_named_item(table):
    table.put_item(TableName="t", Item={**key("b", "old"), "n": {"N": "1"}})
    table.put_item(TableName="t", Item={**key("b", "gone"), "n": {"N": "7"}})
    with pytest.raises(ClientError) as refused:
        table.transact_write_items(TransactItems=[
            put("b", "new"),
            {"Update": {"TableName": "t", "Key": key("b", "old"),
                        "UpdateExpression": "SET n = n + :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Delete": {"TableName": "t", "Key": key("b", "gone")}},
            {"ConditionCheck": {"TableName": "t", "Key": key("b", "missing"),
                                "ConditionExpression": "attribute_exists(pk)"}},
        ])
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert item(table, "b", "new") is None  # the put was undone
    assert item(table, "b", "old")["n"] == {"N": "1"}  # the in-place update was undone
    assert item(table, "b", "gone")["n"] == {"N": "7"}  # the delete was undone


def test_items_outside_the_transaction_are_left_alone(table):
    table.put_item(TableName="t", Item={**key("c", "other"), "n": {"N": "1"}})
    with pytest.raises(ClientError):
        table.transact_write_items(TransactItems=[
            put("c", "x"),
            {"ConditionCheck": {"TableName": "t", "Key": key("c", "missing"),
                                "ConditionExpression": "attribute_exists(pk)"}},
        ])
    table.put_item(TableName="t", Item={**key("c", "other"), "n": {"N": "2"}})
    assert item(table, "c", "other")["n"] == {"N": "2"}
    assert item(table, "c", "x") is None


def test_a_transaction_does_not_copy_the_table(monkeypatch):
    """moto's own backup deep-copies each named table per transaction (seconds on a table of
    thousands of items); with the launcher's change no table is copied. In-process, with
    copying a table made an error."""
    import importlib.util

    from moto import mock_aws
    from moto.dynamodb.models.table import Table

    spec = importlib.util.spec_from_file_location("relay_moto_server", LAUNCHER)
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)

    def copied(self, memo):
        raise AssertionError("a table was deep-copied")

    # In-process only: an endpoint from the environment (scripts/test sets one) would send the
    # calls to a moto server instead of the mock.
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        monkeypatch.setattr(Table, "__deepcopy__", copied, raising=False)
        with pytest.raises(AssertionError):  # moto as it is copies the table
            client.transact_write_items(TransactItems=[put("d", "0")])
        import moto.dynamodb.models as dynamodb_models
        monkeypatch.setattr(dynamodb_models, "copy", dynamodb_models.copy)
        from moto.dynamodb.models import DynamoDBBackend
        monkeypatch.setattr(DynamoDBBackend, "transact_write_items",
                            DynamoDBBackend.transact_write_items)
        assert launcher._narrow_transaction_backups()
        client.transact_write_items(TransactItems=[put("d", "1")])
        with pytest.raises(ClientError):
            client.transact_write_items(TransactItems=[
                put("d", "2"),
                {"ConditionCheck": {"TableName": "t", "Key": key("d", "missing"),
                                    "ConditionExpression": "attribute_exists(pk)"}},
            ])
        assert item(client, "d", "1") is not None
        assert item(client, "d", "2") is None


def test_a_key_query_answers_from_its_partition_as_moto_does(table):
    for pk in ("q1", "q2"):
        for sk in ("c", "a", "b"):
            table.put_item(TableName="t", Item={**key(pk, sk), "gsi": {"S": pk}})

    def query(**extra):
        out = table.query(TableName="t", KeyConditionExpression="pk = :p",
                          ExpressionAttributeValues={":p": {"S": "q1"}, **extra.pop("values", {})},
                          **extra)
        return [i["sk"]["S"] for i in out["Items"]]

    assert query() == ["a", "b", "c"]
    assert query(ScanIndexForward=False) == ["c", "b", "a"]
    assert query(Limit=2) == ["a", "b"]
    out = table.query(TableName="t", KeyConditionExpression="pk = :p AND sk BETWEEN :l AND :h",
                      ExpressionAttributeValues={":p": {"S": "q2"}, ":l": {"S": "b"}, ":h": {"S": "c"}})
    assert [i["sk"]["S"] for i in out["Items"]] == ["b", "c"]
    page = table.query(TableName="t", KeyConditionExpression="pk = :p", Limit=1,
                       ExpressionAttributeValues={":p": {"S": "q1"}})
    rest = table.query(TableName="t", KeyConditionExpression="pk = :p",
                       ExclusiveStartKey=page["LastEvaluatedKey"],
                       ExpressionAttributeValues={":p": {"S": "q1"}})
    assert [i["sk"]["S"] for i in rest["Items"]] == ["b", "c"]
    absent = table.query(TableName="t", KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": {"S": "nobody"}})
    assert absent["Items"] == []


def test_receive_keeps_messages_within_retention(server):
    _, port = server
    sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.create_queue(QueueName="kept")["QueueUrl"]
    for n in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    bodies = set()
    for _ in range(5):
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            bodies.add(m["Body"])
    assert bodies == {f"m{n}" for n in range(5)}


def test_delayed_and_hidden_messages_wait_their_time(server):
    _, port = server
    sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.create_queue(QueueName="timed")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=2)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == "1"
    assert counts["ApproximateNumberOfMessagesDelayed"] == "1"
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    assert [m["Body"] for m in got] == ["now"]  # the delayed one waits
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "1"
    wait_until(lambda: [m["Body"] for m in sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])] == ["later"],
        timeout=30, message="the delayed message after its delay")
