"""tests/faultproxy.py in front of moto: each fault kind as a boto3 client without retries sees
it, keep-alive, the admin endpoint, and seeded decisions that do not depend on interleaving.
Skipped when MOTO_ENDPOINT is unset (scripts/test starts moto)."""

import http.client
import json
import time
import uuid

import pytest

from conftest import tail, wait_until
from faultproxy import FaultPlan, ProxyProcess, operation_of
from lambda_support import MOTO, REGION

needs_moto = pytest.mark.skipif(not MOTO, reason="MOTO_ENDPOINT is not set (scripts/test starts moto)")


@pytest.fixture
def proxy_factory(tmp_path, request):
    started = []

    def start(**kw):
        proxy = ProxyProcess(MOTO, seed=kw.pop("seed", 1), log_path=tmp_path / "faults.jsonl",
                             stderr_path=tmp_path / "proxy.log", **kw)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
    if getattr(getattr(request.node, "rep_call", None), "failed", False):
        print(f"---- proxy log ----\n{tail(tmp_path / 'proxy.log')}")


def client(service, url, read_timeout=10):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service, endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5,
                      read_timeout=read_timeout, s3={"addressing_style": "path"}),
    )


def error_of(call):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def new_queue(sqs):
    return sqs.create_queue(QueueName=f"fp-{uuid.uuid4().hex[:10]}")["QueueUrl"]


def new_table(ddb):
    name = f"fp-{uuid.uuid4().hex[:10]}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    return name


def queued_bodies(queue_url):
    sqs = client("sqs", MOTO)
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [m["Body"] for m in got.get("Messages", [])]


def test_requests_are_named_by_service_and_operation():
    auth = {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/sqs/aws4_request, "
                             "SignedHeaders=host, Signature=00"}
    assert operation_of("POST", "/", {**auth, "x-amz-target": "AmazonSQS.SendMessage"}, b"") == \
        ("sqs", "SendMessage")
    assert operation_of("POST", "/", {"x-amz-target": "DynamoDB_20120810.PutItem"}, b"") == \
        ("dynamodb", "PutItem")
    form = {"content-type": "application/x-www-form-urlencoded; charset=utf-8",
            "authorization": auth["authorization"].replace("/sqs/", "/cloudformation/")}
    assert operation_of("POST", "/", form, b"Action=CreateStack&Version=2010-05-15") == \
        ("cloudformation", "CreateStack")
    s3 = {"authorization": auth["authorization"].replace("/sqs/", "/s3/")}
    assert operation_of("PUT", "/bucket/a/key", s3, b"") == ("s3", "PutObject")
    assert operation_of("GET", "/bucket?list-type=2", s3, b"") == ("s3", "ListObjects")


def test_decisions_depend_only_on_seed_operation_and_call_number():
    rates = ["http500=0.2", "throttle@sqs=0.3", "reset@sqs:DeleteMessage=0"]
    ops = [("sqs", "SendMessage"), ("dynamodb", "PutItem"), ("sqs", "DeleteMessage")] * 50
    first, second, other = FaultPlan(5, rates), FaultPlan(5, rates), FaultPlan(6, rates)
    in_order = [first.decide(*op) for op in ops]
    reversed_order = {op + (n,): kind for op in reversed(ops) for n, kind in [second.decide(*op)]}
    assert {op + (n,): kind for op, (n, kind) in zip(ops, in_order)} == reversed_order
    assert in_order != [other.decide(*op) for op in ops]
    kinds = {kind for _, kind in in_order if kind}
    assert kinds == {"http500", "throttle"}, kinds
    # The most specific rate wins: throttle@sqs applies to SendMessage but not PutItem.
    assert first.rate("throttle", "dynamodb", "PutItem") == 0.0
    assert first.rate("throttle", "sqs", "SendMessage") == 0.3
    assert first.rate("reset", "sqs", "DeleteMessage") == 0.0


@needs_moto
def test_each_fault_kind_as_the_client_sees_it(proxy_factory):
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

    proxy = proxy_factory(latency_ms=300, script=[
        "sqs:SendMessage#1=http500", "sqs:SendMessage#2=http503", "sqs:SendMessage#3=throttle",
        "sqs:SendMessage#4=reset", "sqs:SendMessage#5=timeout", "sqs:SendMessage#6=lost_answer",
        "sqs:SendMessage#7=latency",
        "dynamodb:PutItem#1=throttle", "dynamodb:DescribeTable#1=throttle",
        "dynamodb:PutItem#2=http503",
        "s3:CreateBucket#1=throttle",
    ])
    sqs = client("sqs", proxy.url, read_timeout=2)
    queue = new_queue(sqs)

    def send(tag):
        return lambda: sqs.send_message(QueueUrl=queue, MessageBody=tag)

    assert error_of(send("500")) == (500, "InternalError")
    assert error_of(send("503")) == (503, "ServiceUnavailable")
    assert error_of(send("throttle")) == (400, "RequestThrottled")
    with pytest.raises(ConnectionClosedError):
        send("reset")()
    with pytest.raises(ReadTimeoutError):
        send("timeout")()
    with pytest.raises(ConnectionClosedError):
        send("lost")()
    started = time.monotonic()
    send("slow")()
    assert time.monotonic() - started >= 0.3
    # Only the lost answer and the slow call reached moto.
    assert sorted(queued_bodies(queue)) == ["lost", "slow"]

    ddb = client("dynamodb", proxy.url)
    table = new_table(client("dynamodb", MOTO))
    item = {"pk": {"S": "a"}}
    assert error_of(lambda: ddb.put_item(TableName=table, Item=item)) == \
        (400, "ProvisionedThroughputExceededException")
    assert error_of(lambda: ddb.describe_table(TableName=table)) == (400, "ThrottlingException")
    assert error_of(lambda: ddb.put_item(TableName=table, Item=item)) == (503, "ServiceUnavailable")
    ddb.put_item(TableName=table, Item=item)

    s3 = client("s3", proxy.url)
    bucket = f"fp-{uuid.uuid4().hex[:10]}"
    assert error_of(lambda: s3.create_bucket(Bucket=bucket)) == (503, "SlowDown")
    s3.create_bucket(Bucket=bucket)

    faults = proxy.faults()
    assert faults["counts"] == {"http500": 1, "http503": 2, "throttle": 4, "reset": 1,
                                "timeout": 1, "lost_answer": 1, "latency": 1}
    assert faults["by_op"]["sqs:SendMessage"]["lost_answer"] == 1
    assert faults["calls"]["dynamodb:PutItem"] == 3


@needs_moto
def test_keep_alive_and_admin_changes(proxy_factory):
    proxy = proxy_factory()
    sqs = client("sqs", proxy.url)
    queue = new_queue(sqs)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        for n in range(3):  # three answers on one connection
            conn.request("GET", "/__faults")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
    finally:
        conn.close()

    proxy.configure({"rates": {"http503@sqs:SendMessage": 1.0}})
    assert error_of(lambda: sqs.send_message(QueueUrl=queue, MessageBody="x")) == \
        (503, "ServiceUnavailable")
    proxy.configure({"rates": {}, "reset_counts": True})
    for n in range(5):  # boto3 reuses its pooled connection through the proxy
        sqs.send_message(QueueUrl=queue, MessageBody=str(n))
    snapshot = proxy.faults()
    assert snapshot["counts"] == {} and snapshot["calls"]["sqs:SendMessage"] == 5

    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("POST", "/__faults", body=b'{"rates": {"nonsense": 1}}')
        response = conn.getresponse()
        assert response.status == 400 and b"unknown fault kind" in response.read()
    finally:
        conn.close()


@needs_moto
def test_a_client_that_gives_up_on_an_applied_request_is_logged(proxy_factory, tmp_path):
    from botocore.exceptions import ReadTimeoutError

    # 2 s of injected latency, then forwarded: the client has given up after 0.5 s.
    proxy = proxy_factory(latency_ms=2000, script=["sqs:SendMessage#1=latency"])
    sqs = client("sqs", proxy.url, read_timeout=0.5)
    queue = new_queue(sqs)
    with pytest.raises(ReadTimeoutError):
        sqs.send_message(QueueUrl=queue, MessageBody="applied")

    def logged():
        lines = (tmp_path / "faults.jsonl").read_text().splitlines()
        return [json.loads(line)["kind"] for line in lines] if len(lines) >= 2 else None

    # Applied upstream although the client saw a timeout; logged as such, counted as no fault.
    assert wait_until(logged, timeout=10, message="the proxy's log") == ["latency", "client_gave_up"]
    assert queued_bodies(queue) == ["applied"]
    assert proxy.faults()["counts"] == {"latency": 1}
