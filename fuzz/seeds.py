#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/), from the examples of
docs/events.md and docs/api.md and events shaped like logbus-gen's. Each seed is named after its
content's SHA-1, as libFuzzer names the inputs it keeps, so re-running this adds nothing twice.
Crashes found later are added beside these by hand (fuzz/README.md)."""

import hashlib
import json
import pathlib

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"

DOCS_EVENT = {
    "event_id": "0b8f3c2e-5d1a-4c7e-9a53-2f1d7c9e4b10", "created_at": 1764201600, "type": 2,
    "user_id": 42, "username": "alice", "token_id": 7, "token_name": "ci",
    "model_name": "gpt-4o", "quota": 1530, "prompt_tokens": 812, "completion_tokens": 96,
    "use_time": 3, "is_stream": True, "channel_id": 3, "channel_name": "openai-main",
    "group": "default", "ip": "203.0.113.9", "request_id": "req-9f2",
    "content": "模型倍率 2.50，补全倍率 4.00",
    "other": {"model_ratio": 2.5, "admin_info": {"use_channel": ["3"]}},
}
GEN_OTHER = ('{"admin_info":{"use_channel":["4"]},"cache_ratio":1,"cache_tokens":0,'
             '"completion_ratio":4,"frt":812,"group_ratio":0.9,"model_price":-1,"model_ratio":1.25}')


def gen_event(i, log_type=2, with_id=True):
    event = {
        "created_at": 1764201600 - 60 * i, "type": log_type, "user_id": 100 + i,
        "username": f"user{100 + i}", "token_id": 200 + i, "token_name": f"key-{200 + i}",
        "model_name": ["gpt-4o", "claude-3-5-sonnet", "gemini-1.5-pro"][i % 3],
        "quota": 1000 + i, "prompt_tokens": 20 + i, "completion_tokens": 3 * i,
        "use_time": 1 + i % 40, "is_stream": i % 2 == 0, "channel_id": 1 + i % 5,
        "channel_name": f"channel-{1 + i % 5}", "group": ["default", "vip", "svip"][i % 3],
        "ip": f"198.51.100.{i}", "request_id": f"req-{i:04x}", "upstream_request_id": f"up-{i}",
        "content": "模型倍率 1.25，补全倍率 4.00，分组倍率 0.90", "other": GEN_OTHER,
    }
    if with_id:
        event["event_id"] = f"00000000-0000-4000-8000-{i:012x}"
    return event


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def event_seeds():
    minimal = {"created_at": 1764201600, "type": 2, "user_id": 1}
    seeds = [
        compact(DOCS_EVENT),
        json.dumps(DOCS_EVENT, ensure_ascii=False, indent=1),
        compact(gen_event(1)),
        compact(gen_event(2, with_id=False)),
        compact(minimal),
        compact({**minimal, "username": None, "quota": -250, "other": None, "extra": [1, 2]}),
        compact({**minimal, "type": 5, "content": "upstream error: 429", "other": ""}),
        compact({**minimal, "type": 6, "quota": 800, "other": {}}),
        compact([gen_event(i, log_type=t) for i, t in enumerate([2, 5, 1, 7])]),
        compact([gen_event(3), {**minimal, "type": 9}, gen_event(4, with_id=False)]),
        compact([]),
        "  \n" + compact(minimal),
        # Refused ones: each rule of docs/events.md once.
        compact({**minimal, "type": 8}),
        compact({**minimal, "created_at": 0}),
        compact({**minimal, "created_at": 4294967296}),
        compact({**minimal, "created_at": 1764201600 + 301}),
        compact({**minimal, "user_id": -1}),
        compact({**minimal, "prompt_tokens": -5}),
        compact({**minimal, "use_time": 2147483648}),
        compact({**minimal, "other": "not an object"}),
        compact({**minimal, "other": '{"nested":{"a":[1,2.5e300,null]}}'}),
        compact({**minimal, "other": [1]}),
        compact({**minimal, "event_id": "not-a-uuid"}),
        compact({"type": 2, "user_id": 1}),
        '{"created_at":1764201600,"type":2,"user_id":1,"username":"\\u00e9\\ud83d\\ude00"}',
        "[1,2,3,4]",
        "[{},{},{},{}]",
        "not json",
        "",
    ]
    return seeds


def identity_seeds():
    hex64 = hashlib.sha256(b"demo").hexdigest()
    user = {"kind": "user", "id": 1, "username": "root", "role": 100, "status": 1,
            "group": "default", "access_token_sha256": hex64, "version": 3}
    token = {"kind": "token", "id": 7, "user_id": 42, "name": "ci", "key_sha256": hex64,
             "status": 1, "version": 1}
    return [
        compact(user),
        compact(token),
        compact({**user, "access_token_sha256": None, "access_token": "plainAccessToken123"}),
        compact({**token, "key_sha256": "", "key": "sk-plainTokenKey456"}),
        compact({**token, "key_sha256": None, "key": "plainTokenKey456"}),
        compact({**user, "access_token_sha256": hex64.upper()}),
        compact({"kind": "user", "id": 2, "role": 1, "status": 2, "version": 0}),
        compact({**user, "access_token_sha256": "zz", "access_token": "plainAccessToken123"}),
        compact({**token, "key_sha256": "abc", "key": "sk-plainTokenKey456"}),
        compact({**token, "key": 123456789}),
        compact({**user, "access_token": {"key": "nestedSecret789"}}),
        compact({**user, "version": -1, "access_token": "plainAccessToken123"}),
        compact({"kind": "group", "id": 1, "key": "sk-plainTokenKey456"}),
        compact([user]),
        '{"kind":"token","id":1,"user_id":1,"key":"sk-truncatedSecret',
        '{"kind":"user","id":1,"role":1,"status":1,"version":1,"acc\\u0065ss_token":"escapedName1"}',
        "",
    ]


def query_seeds():
    cursor = "6929a480" + "0b8f3c2e5d1a4c7e9a532f1d7c9e4b10" + "0000000000000014"
    return [
        "",
        "p=1&page_size=20",
        "p=2&page_size=100&type=2&start_timestamp=1764115200&end_timestamp=1764201600",
        "p=500", "p=501", "p=0&page_size=-1", "p=9223372036854775807&page_size=100",
        f"cursor={cursor}&page_size=50", "cursor=zz", f"cursor={cursor[2:]}",
        f"cursor={cursor[:-16]}{'f' * 16}&page_size=2",
        "username=alice&token_name=ci&model_name=gpt-4o&channel=3&group=default&request_id=req-9f2",
        "model_name=gpt%25", "model_name=%25claude%25", "username=%25-mini",
        "model_name=%25%25", "model_name=a%25", "model_name=%25a%25b%25", "username=my_model%25",
        "type=abc", "type=256", "channel=99999999999999999999", "start_timestamp=-1",
        "keyword=%E6%A8%A1%E5%9E%8B", "keyword=a+b%20c", "key=sk-abc",
        "start_timestamp=1767225600&end_timestamp=1767311999",
        "start_timestamp=1767225600.5",
        "start_timestamp=1767225600&interval=day&tz=Asia/Shanghai&group_by=model,user&top=5",
        "start_timestamp=60&interval=minute&group_by=user,%20model,user",
        "start_timestamp=1&interval=week&tz=Mars/Olympus&group_by=ip&top=101",
        "start_timestamp=1&group_by=model,user,token",
        "target_timestamp=1764201600&confirm=true&dry_run=1",
        "target_timestamp=0", "target_timestamp=4294967296&confirm=yes",
        "format=jsonl&totals=true", "format=CSV&totals=0", "format=xlsx&totals=maybe",
        "a=%ff", "k=1&k=2&flag", "username=" + "x" * 1025,
    ]


def write(target, seeds):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        data = seed.encode()
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":
    write("event_parser", event_seeds())
    write("identity_parser", identity_seeds())
    write("query_string", query_seeds())
