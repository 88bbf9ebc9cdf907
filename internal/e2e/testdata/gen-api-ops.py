#!/usr/bin/env python3
"""Writes docker-api-ops.json, the operations of the Docker Engine API spec
that TestRESTFuzz draws requests from:
  python3 gen-api-ops.py /work/shared/docker-api/v1.51.yaml > docker-api-ops.json
(Go has no YAML parser in go.mod, so the list is generated and committed.)"""
import json, sys, yaml

spec = yaml.safe_load(open(sys.argv[1]))
ops = []
for path, item in sorted(spec["paths"].items()):
    common = item.get("parameters", [])
    for method, op in sorted(item.items()):
        if method == "parameters":
            continue
        params = []
        for p in common + op.get("parameters", []):
            if "$ref" in p:
                continue
            q = {"name": p["name"], "in": p["in"]}
            if p["in"] == "body":
                q["type"] = "object"
            else:
                q["type"] = p.get("type", "string")
                if "enum" in p:
                    q["enum"] = p["enum"]
            params.append(q)
        ops.append({"id": op.get("operationId", ""), "method": method.upper(), "path": path, "params": params})
json.dump(ops, sys.stdout, indent=1)
print()
