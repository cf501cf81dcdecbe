#!/usr/bin/env python3
"""A stand-in for MinIO's client `mc`, for running the users Job's script (manifests/base/minio-users.yaml).

Keeps MinIO's state (users, policies, buckets) in the JSON file ``$FAKE_MC_STATE`` and answers the
commands the script uses as mc RELEASE.2025-04-16 does: `mc admin user list --json` prints one
JSON object per user, indented by one space (mc's MarshalIndent), with accessKey, policyName
(comma-separated) and userStatus (``FAKE_MC_JSON=compact``: one line each). Any other command fails, so a script that starts using one
must teach it here first. Every call is appended to ``$FAKE_MC_STATE.log``.
"""

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    state_file = Path(os.environ["FAKE_MC_STATE"])
    state = (
        json.loads(state_file.read_text())
        if state_file.exists()
        else {"users": {}, "policies": {}, "buckets": {}}
    )
    with open(f"{state_file}.log", "a") as log:
        log.write(json.dumps(argv) + "\n")
    json_out = "--json" in argv
    args = [a for a in argv if a != "--json"]

    def save() -> int:
        state_file.write_text(json.dumps(state, indent=1))
        return 0

    def bucket(target: str) -> dict:
        alias, _, name = target.partition("/")
        assert alias == "teacherlm" and name, target
        return state["buckets"].setdefault(name, {"versioning": False, "lifecycle": None})

    match args:
        case ["alias", "set", "teacherlm", _url, _access, _secret]:
            return 0
        case ["ready", "teacherlm"]:
            return 0
        case ["mb", "--ignore-existing", *targets] if targets:  # mc mb takes several buckets
            for target in targets:
                bucket(target)
            return save()
        case ["version", "enable", target]:
            bucket(target)["versioning"] = True
            return save()
        case ["ilm", "import", target]:
            rules = json.loads(sys.stdin.read())
            bucket(target)["lifecycle"] = rules
            return save()
        case ["admin", "policy", "create", "teacherlm", name, path]:
            state["policies"][name] = json.loads(Path(path).read_text())
            return save()
        case ["admin", "user", "add", "teacherlm", access, secret]:
            user = state["users"].setdefault(access, {"policies": [], "status": "enabled"})
            user["secret"] = secret
            return save()
        case ["admin", "policy", "attach", "teacherlm", policy, "--user", access]:
            user = state["users"].get(access)
            if user is None or policy not in state["policies"]:
                print("mc: <ERROR> Unable to attach policy", file=sys.stderr)
                return 1
            if policy in user["policies"]:  # as MinIO: attaching an attached policy is an error
                print(
                    "mc: <ERROR> Unable to attach policy: policy change is already in effect", file=sys.stderr
                )
                return 1
            user["policies"].append(policy)
            return save()
        case ["admin", "user", "info", "teacherlm", access]:
            user = state["users"].get(access)
            if user is None:
                return 1
            print(f"AccessKey: {access}\nStatus: {user['status']}\nPolicyName: {','.join(user['policies'])}")
            return 0
        case ["admin", "user", "list", "teacherlm"] if json_out:
            for access, user in state["users"].items():
                msg = {"status": "success", "accessKey": access, "policyName": ",".join(user["policies"]),
                       "userStatus": user["status"]}  # fmt: skip
                if user.get("groups"):
                    msg["memberOf"] = user["groups"]
                if not msg["policyName"]:
                    del msg["policyName"]  # omitempty
                # mc RELEASE.2025-04-16 indents (MarshalIndent); FAKE_MC_JSON=compact: one line each
                print(
                    json.dumps(msg, separators=(",", ":"))
                    if os.environ.get("FAKE_MC_JSON")
                    else json.dumps(msg, indent=1)
                )
            return 0
        case ["admin", "user", "remove", "teacherlm", access]:
            if state["users"].pop(access, None) is None:
                return 1
            return save()
    print(f"fake mc: command not implemented: {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
