"""Deploy-time rules of infra/template.yaml that CloudFormation cannot show until a deploy fails:
the receiver's table access is limited to the items it uses, and a delivery timeout the fanout
function cannot wait for is refused."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
DYNAMO_RS = ROOT / "crates" / "relay-aws" / "src" / "dynamo" / "keys.rs"


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !GetAtt, ...) as plain values."""


def _any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _any_tag)


def template():
    return yaml.load(TEMPLATE.read_text(), Loader=_Loader)


def statements(role):
    """The role's statements; a statement or an action list under `!If` counts with every
    branch, since each is what some parameters deploy."""
    policies = template()["Resources"][role]["Properties"]["Policies"]
    found = []
    for policy in policies:
        for st in policy["PolicyDocument"]["Statement"]:
            branches = st["If"][1:] if "If" in st else [st]
            for branch in branches:
                if isinstance(branch, dict) and "Ref" not in branch:
                    found.extend(_with_each_action_list(branch))
    return found


def _with_each_action_list(st):
    actions = st.get("Action")
    if isinstance(actions, dict) and "If" in actions:
        return [{**st, "Action": branch} for branch in actions["If"][1:]]
    return [st]


def key_prefix(function):
    """The partition-key prefix a relay-aws key builder writes, e.g. DEDUP# for dedup_pk."""
    match = re.search(rf'fn {function}\([^)]*\) -> String {{\s*format!\("([A-Z]+#)', DYNAMO_RS.read_text())
    assert match, f"{function} not found in {DYNAMO_RS}"
    return match.group(1)


def test_receiver_writes_only_dedup_items_and_reads_only_sources_claims_and_events():
    """Reads: sources, claims, and stored events (a stored event confirms its claim)."""
    table = [st for st in statements("ReceiverRole")
             if any(str(a).startswith("dynamodb:") for a in _actions(st))]
    dedup, source = key_prefix("dedup_pk"), key_prefix("source_pk")
    events = key_prefix("events_partition")
    assert table, "the receiver has no table statement"
    writes = [st for st in table if set(_actions(st)) != {"dynamodb:GetItem"}]
    # Confirmed claims (EventArchive failures/off) need UpdateItem; claims the stored event
    # confirms do not.
    assert sorted(sorted(_actions(st)) for st in writes) == [
        ["dynamodb:DeleteItem", "dynamodb:PutItem"],
        ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
    ], writes
    for st in table:
        leading = st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
        if set(_actions(st)) == {"dynamodb:GetItem"}:
            assert sorted(leading) == sorted([f"{source}*", f"{dedup}*", f"{events}*"]), st
        else:
            assert set(_actions(st)) <= {"dynamodb:PutItem", "dynamodb:UpdateItem",
                                         "dynamodb:DeleteItem"}, st
            assert leading == [f"{dedup}*"], st


def _actions(statement):
    actions = statement["Action"]
    return actions if isinstance(actions, list) else [actions]


def test_every_fanout_timeout_limits_the_delivery_timeout():
    doc = template()
    params = doc["Parameters"]
    delivery_max = params["DeliveryTimeoutSeconds"]["MaxValue"]
    rules = doc["Rules"]
    for fanout in params["FanoutTimeoutSeconds"]["AllowedValues"]:
        limit = fanout - 10
        rule = rules.get(f"DeliveryTimeoutFitsFanout{fanout}")
        if limit >= delivery_max:
            assert rule is None, f"fanout {fanout} needs no rule"
            continue
        assert rule, f"no rule for FanoutTimeoutSeconds {fanout}"
        assert rule["RuleCondition"] == {"Equals": [{"Ref": "FanoutTimeoutSeconds"}, str(fanout)]}
        (assertion,) = rule["Assertions"]
        allowed, ref = assertion["Assert"]["Contains"]
        assert ref == {"Ref": "DeliveryTimeoutSeconds"}
        assert allowed == [str(n) for n in range(1, limit + 1)], fanout


def test_first_attempt_timeout_reaches_the_fanout():
    doc = template()
    env = doc["Resources"]["FanoutFunction"]["Properties"]["Environment"]["Variables"]
    assert env["RELAY_FIRST_ATTEMPT_TIMEOUT_SECS"] == {"Ref": "FirstAttemptTimeoutSeconds"}
    assert doc["Parameters"]["FirstAttemptTimeoutSeconds"]["Default"] < \
        doc["Parameters"]["DeliveryTimeoutSeconds"]["Default"]


def test_reconcile_writes_only_dedup_items_and_reads_credentials_only_under_the_stack_name():
    """The scheduled reconcile function: table reads of sources, claims and stored events, the
    source listing's Query on the index only, writes of dedup claims only (Stripe ingestion),
    the events queue, and provider credentials kept under the stack's own name."""
    doc = template()
    assert doc["Conditions"]["Reconciles"] == {"And": [
        {"Condition": "Deduplicates"},
        {"Not": [{"Equals": [{"Ref": "ReconcileIntervalMinutes"}, "0"]}]}]}
    for name in ("ReconcileRole", "ReconcileFunction", "ReconcileLogGroup",
                 "ReconcileUnrecoveredAlarm", "ReconcileStoppedAlarm"):
        assert doc["Resources"][name]["Condition"] == "Reconciles", name
    dedup, source = key_prefix("dedup_pk"), key_prefix("source_pk")
    events = key_prefix("events_partition")
    by_sid = {}
    for st in statements("ReconcileRole"):
        by_sid.setdefault(st["Sid"], []).append(st)
    assert set(by_sid) == {"Logs", "ReadSourcesClaimsAndEvents", "ListSources", "WriteClaims",
                           "EnqueueEvents", "StoreBodies", "ReadCredentials", "ReadSecrets"}
    (reads,) = by_sid["ReadSourcesClaimsAndEvents"]
    assert _actions(reads) == ["dynamodb:GetItem"]
    assert sorted(reads["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]) == \
        sorted([f"{source}*", f"{dedup}*", f"{events}*"])
    (listing,) = by_sid["ListSources"]
    assert _actions(listing) == ["dynamodb:Query"]
    assert listing["Resource"] == {"Sub": "${Table.Arn}/index/gsi1"}
    for st in by_sid["WriteClaims"]:
        assert set(_actions(st)) <= {"dynamodb:PutItem", "dynamodb:UpdateItem",
                                     "dynamodb:DeleteItem"}, st
        assert st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == [f"{dedup}*"]
    (enqueue,) = by_sid["EnqueueEvents"]
    assert (_actions(enqueue), enqueue["Resource"]) == (["sqs:SendMessage"],
                                                         {"GetAtt": "EventsQueue.Arn"})
    (ssm,) = by_sid["ReadCredentials"]
    (secrets,) = by_sid["ReadSecrets"]
    assert _actions(ssm) == ["ssm:GetParameter"]
    assert ssm["Resource"]["Sub"].endswith(":parameter/${AWS::StackName}/*")
    assert _actions(secrets) == ["secretsmanager:GetSecretValue"]
    assert secrets["Resource"]["Sub"].endswith(":secret:${AWS::StackName}/*")

    # Only the schedule invokes it, every ReconcileIntervalMinutes, and a failed sweep is not
    # retried (the next one comes on schedule).
    props = doc["Resources"]["ReconcileFunction"]["Properties"]
    (event,) = props["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Sub": "rate(${ReconcileIntervalMinutes} minutes)"}
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    # "rate(1 minutes)" is not a valid expression: every interval but off is plural.
    intervals = [int(v) for v in doc["Parameters"]["ReconcileIntervalMinutes"]["AllowedValues"]]
    assert 0 in intervals and all(v == 0 or v >= 2 for v in intervals), intervals


def s3_statements(role):
    return [st for st in statements(role) if any(str(a).startswith("s3:") for a in _actions(st))]


def test_bodies_bucket_is_private_encrypted_expired_and_kept_like_the_table():
    """Bodies over 256 KiB are stored in the bucket (crates/relay-core/src/ports/bodies.rs): encrypted
    at rest, never public, TLS only, expired with the event records, retained like the table."""
    doc = template()
    resources = doc["Resources"]
    bucket = resources["BodiesBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == (
        resources["Table"]["DeletionPolicy"], resources["Table"]["UpdateReplacePolicy"])
    props = bucket["Properties"]
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    expire = rules["expire-bodies"]
    assert expire["Status"] == "Enabled" and expire["Prefix"] == "bodies/"
    assert expire["ExpirationInDays"] == {"Ref": "EventRetentionDays"}
    (deny,) = resources["BodiesBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # The key prefix the code writes under is the one granted and expired.
    bodies_rs = (ROOT / "crates" / "relay-core" / "src" / "ports" / "bodies.rs").read_text()
    assert 'format!("bodies/{event_id}")' in bodies_rs
    # Every function that touches bodies is told the bucket.
    for function in ("ReceiverFunction", "FanoutFunction", "ReconcileFunction"):
        env = resources[function]["Properties"]["Environment"]["Variables"]
        assert env["RELAY_BODIES_BUCKET"] == {"Ref": "BodiesBucket"}, function
    assert doc["Outputs"]["BodiesBucketName"]["Value"] == {"Ref": "BodiesBucket"}


def test_bodies_are_written_by_the_receiver_and_read_by_the_fanout_only():
    """Receiver: PutObject (the body) and DeleteObject (when the enqueue after it fails).
    Fanout: GetObject (deliveries, replays, redrives). Reconcile: as the receiver (it queues
    what it recovers through the receiver's path). Objects under bodies/ only."""
    objects = {"Sub": "${BodiesBucket.Arn}/bodies/*"}
    (receiver,) = s3_statements("ReceiverRole")
    assert sorted(_actions(receiver)) == ["s3:DeleteObject", "s3:PutObject"]
    assert receiver["Resource"] == objects
    (fanout,) = s3_statements("FanoutRole")
    assert _actions(fanout) == ["s3:GetObject"]
    assert fanout["Resource"] == objects
    (reconcile,) = s3_statements("ReconcileRole")
    assert sorted(_actions(reconcile)) == ["s3:DeleteObject", "s3:PutObject"]
    assert reconcile["Resource"] == objects


def test_the_body_limit_is_the_code_default_and_the_function_url_maximum():
    params = template()["Parameters"]["MaxBodyBytes"]
    model = (ROOT / "crates" / "relay-core" / "src" / "domain" / "model.rs").read_text()
    default = re.search(r"pub const DEFAULT_MAX_BODY_BYTES: usize = ([\d_]+);", model).group(1)
    assert params["Default"] == params["MaxValue"] == int(default.replace("_", "")) == 6_000_000
