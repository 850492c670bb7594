"""Tests for the test bed's provisioning (tests/testbed/testbed.py): which artifacts it fetches, the
lang-painless module it puts together for k-NN, the install each set of plugins gets, and the check
that every node lists every plugin. Downloads are replaced by local files; the checks ask a local
HTTP server. Starting real nodes is `make up`'s part (docs/testbed.md)."""

import importlib.util
import pathlib
import sys
import zipfile

import pytest

TESTBED_PATH = pathlib.Path(__file__).resolve().parents[2] / "testbed" / "testbed.py"

POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <artifactId>lang-painless</artifactId>
  <dependencies>
    <dependency>
      <groupId>org.antlr</groupId><artifactId>antlr4-runtime</artifactId><version>4.13.1</version>
      <scope>compile</scope>
      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
    </dependency>
    <dependency>
      <groupId>org.ow2.asm</groupId><artifactId>asm</artifactId><version>9.7</version><scope>runtime</scope>
    </dependency>
    <dependency>
      <groupId>org.opensearch.plugin</groupId><artifactId>opensearch-scripting-painless-spi</artifactId>
      <version>2.19.6</version>
    </dependency>
    <dependency>
      <groupId>junit</groupId><artifactId>junit</artifactId><version>4.13</version><scope>test</scope>
    </dependency>
    <dependency>
      <groupId>org.example</groupId><artifactId>provided-one</artifactId><version>1</version><scope>provided</scope>
    </dependency>
    <dependency>
      <groupId>org.example</groupId><artifactId>optional-one</artifactId><version>1</version><optional>true</optional>
    </dependency>
  </dependencies>
</project>
"""
POM_JARS = ["lang-painless-2.19.6.jar", "antlr4-runtime-4.13.1.jar", "asm-9.7.jar", "opensearch-scripting-painless-spi-2.19.6.jar"]


def load_testbed_module():
    # testbed.py is a script, not a package module: loaded from its path, registered so dataclasses resolve it.
    spec = importlib.util.spec_from_file_location("testbed_under_test", TESTBED_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


testbed = load_testbed_module()


def config(tmp_path, version="2.19.6", port=9200, nodes=1):
    return testbed.Config(version=version, port=port, emulator_port=8089, cache=tmp_path / "cache", nodes=nodes)


def write_zip(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zipped:
        for name, content in members.items():
            zipped.writestr(name, content)


def core_zip_members(version, with_painless):
    members = {f"opensearch-{version}/modules/transport-netty4/plugin-descriptor.properties": "java.version=11\n"}
    if with_painless:
        members[f"opensearch-{version}/modules/lang-painless/plugin-descriptor.properties"] = "name=lang-painless\n"
    return members


class Fetched(list):
    """The filenames downloaded, in order; ``core_has_painless`` shapes the core zip made next."""
    core_has_painless = False


@pytest.fixture
def fake_maven(monkeypatch):
    """Downloads without a network: each artifact becomes a small local file (the core zip with or
    without lang-painless, the pom above, jars holding PainlessPlugin); returns the filenames fetched."""
    fetched = Fetched()

    def download(artifact, destination):
        path = destination / artifact.filename
        fetched.append(artifact.filename)
        if artifact.name == "opensearch" and artifact.packaging == "zip":
            write_zip(path, core_zip_members(artifact.version, fetched.core_has_painless))
        elif artifact.packaging == "pom":
            path.write_text(POM)
        elif artifact.packaging == "jar":
            write_zip(path, {"org/opensearch/painless/PainlessPlugin.class": b"\xca\xfe"})
        else:
            write_zip(path, {"plugin-descriptor.properties": f"name={artifact.name}\n"})

    monkeypatch.setattr(testbed.shutil, "which", lambda name: None)
    monkeypatch.setattr(testbed, "download_with_urllib", download)
    return fetched


def test_plugins_in_install_order_at_the_plugin_version(tmp_path):
    listed = testbed.plugins(config(tmp_path, "2.19.6"))
    assert [plugin.listed_as for plugin in listed] == ["opensearch-job-scheduler", "opensearch-ml", "opensearch-knn"]
    assert [plugin.artifact.coordinates for plugin in listed] == [
        "org.opensearch.plugin:opensearch-job-scheduler:2.19.6.0:zip",
        "org.opensearch.plugin:opensearch-ml-plugin:2.19.6.0:zip",
        "org.opensearch.plugin:opensearch-knn:2.19.6.0:zip",
    ]
    # Before 2.19 ML Commons does not extend job-scheduler; k-NN is there on every version.
    assert [plugin.listed_as for plugin in testbed.plugins(config(tmp_path, "2.18.0"))] == ["opensearch-ml", "opensearch-knn"]
    assert testbed.plugins(config(tmp_path, "3.6.0"))[-1].artifact.filename == "opensearch-knn-3.6.0.0.zip"


def test_an_artifact_of_another_packaging_names_it():
    jar = testbed.Artifact("org.ow2.asm", "asm", "9.7", "jar")
    assert jar.filename == "asm-9.7.jar"
    assert jar.coordinates == "org.ow2.asm:asm:9.7:jar"
    assert jar.url == "https://repo1.maven.org/maven2/org/ow2/asm/asm/9.7/asm-9.7.jar"


def test_the_pom_names_the_runtime_jars_at_its_versions(tmp_path):
    pom = tmp_path / "lang-painless-2.19.6.pom"
    pom.write_text(POM)
    assert [jar.coordinates for jar in testbed.pom_runtime_dependencies(pom)] == [
        "org.antlr:antlr4-runtime:4.13.1:jar",
        "org.ow2.asm:asm:9.7:jar",
        "org.opensearch.plugin:opensearch-scripting-painless-spi:2.19.6:jar",
    ]


@pytest.mark.parametrize("broken, message", [
    (POM.replace("<version>9.7</version>", "<version>${asm.version}</version>"), "no literal version for org.ow2.asm:asm"),
    ("<project", "cannot read the pom"),
])
def test_a_pom_that_names_no_usable_version_is_one_clear_error(tmp_path, broken, message):
    pom = tmp_path / "lang-painless-2.19.6.pom"
    pom.write_text(broken)
    with pytest.raises(testbed.TestbedError, match=message):
        testbed.pom_runtime_dependencies(pom)


def test_without_painless_in_the_distribution_its_pom_and_jars_are_fetched(tmp_path, fake_maven):
    cfg = config(tmp_path, "2.19.6")
    testbed.fetch_artifacts(cfg)
    # Plugins, then the core zip, then the pom before the jars it names.
    assert fake_maven == [
        "opensearch-job-scheduler-2.19.6.0.zip", "opensearch-ml-plugin-2.19.6.0.zip", "opensearch-knn-2.19.6.0.zip",
        "opensearch-2.19.6.zip", "lang-painless-2.19.6.pom", *POM_JARS,
    ]
    fake_maven.clear()
    testbed.fetch_artifacts(cfg)
    assert not fake_maven, "a second fetch downloads nothing: every artifact is cached"


def test_a_distribution_with_painless_fetches_no_painless_artifact(tmp_path, fake_maven):
    fake_maven.core_has_painless = True
    testbed.fetch_artifacts(config(tmp_path, "3.6.0"))
    assert fake_maven == ["opensearch-job-scheduler-3.6.0.0.zip", "opensearch-ml-plugin-3.6.0.0.zip",
                          "opensearch-knn-3.6.0.0.zip", "opensearch-3.6.0.zip"]


def unpacked_home(tmp_path, cfg):
    home = tmp_path / "home"
    testbed.extract_keeping_modes(cfg.artifacts_dir / testbed.core_artifact(cfg).filename, home)
    return home / f"opensearch-{cfg.version}"


def test_the_painless_module_is_its_jars_a_descriptor_and_a_policy(tmp_path, fake_maven):
    cfg = config(tmp_path, "2.19.6")
    testbed.fetch_artifacts(cfg)
    home = unpacked_home(tmp_path, cfg)
    testbed.install_painless_module(cfg, home)
    module = home / "modules" / "lang-painless"
    assert sorted(path.name for path in module.glob("*.jar")) == sorted(POM_JARS)
    descriptor = testbed.read_properties(module / "plugin-descriptor.properties")
    assert descriptor == {
        "description": "An easy, safe and fast scripting language for OpenSearch",
        "version": "2.19.6",
        "name": "lang-painless",
        "classname": "org.opensearch.painless.PainlessPlugin",
        # The Java version of the distribution's own module.
        "java.version": "11",
        "opensearch.version": "2.19.6",
        "extended.plugins": "",
        "has.native.controller": "false",
    }
    policy = (module / "plugin-security.policy").read_text()
    assert 'RuntimePermission "createClassLoader"' in policy
    assert 'RuntimePermission "getClassLoader"' in policy


def test_the_descriptor_names_the_plugin_class_the_jar_holds(tmp_path):
    jar = tmp_path / "lang-painless-3.6.0.jar"
    write_zip(jar, {"org/opensearch/painless/PainlessModulePlugin.class": b"\xca\xfe"})
    assert testbed.painless_classname(jar) == "org.opensearch.painless.PainlessModulePlugin"
    write_zip(jar, {"org/opensearch/painless/Other.class": b"\xca\xfe"})
    with pytest.raises(testbed.TestbedError, match="holds none of the classes"):
        testbed.painless_classname(jar)


def test_a_distribution_module_without_java_version_is_one_clear_error(tmp_path, fake_maven):
    cfg = config(tmp_path, "2.19.6")
    testbed.fetch_artifacts(cfg)
    home = unpacked_home(tmp_path, cfg)
    (home / "modules" / "transport-netty4" / "plugin-descriptor.properties").write_text("# nothing\n")
    with pytest.raises(testbed.TestbedError, match="names no java.version"):
        testbed.install_painless_module(cfg, home)


def test_each_set_of_plugins_gets_an_install_of_its_own(tmp_path, monkeypatch):
    cfg = config(tmp_path, "2.19.6")
    home = cfg.opensearch_home
    assert home.parent == tmp_path / "cache" / "install"
    assert home.name.startswith("opensearch-2.19.6-")
    # Never the directory of a checkout that installs without k-NN, whose nodes may run from it.
    assert home.name != "opensearch-2.19.6"
    assert config(tmp_path, "2.19.6", port=9250, nodes=3).opensearch_home == home
    assert config(tmp_path, "3.6.0").opensearch_home != home
    monkeypatch.setattr(testbed, "plugins", lambda cfg: [])
    assert cfg.opensearch_home != home


def cat_plugins(nodes, components):
    return [{"name": f"ml-testbed-{index}", "component": component} for index in nodes for component in components]


ALL_PLUGINS = ["opensearch-job-scheduler", "opensearch-ml", "opensearch-knn"]


def test_every_plugin_on_every_node_passes(tmp_path):
    cfg = config(tmp_path, "3.6.0", nodes=3)
    assert testbed.plugins_listed(cfg, cat_plugins(range(3), ALL_PLUGINS)) is True
    # No answer yet (or not JSON): still waiting.
    assert testbed.plugins_listed(cfg, None) is False


def test_a_plugin_missing_on_a_node_fails_at_once_naming_both(tmp_path):
    cfg = config(tmp_path, "3.6.0", nodes=3)
    listing = cat_plugins([0, 2], ALL_PLUGINS) + cat_plugins([1], ALL_PLUGINS[:2])
    with pytest.raises(testbed.TestbedError, match=r"opensearch-knn is not loaded on ml-testbed-1 \(") as raised:
        testbed.plugins_listed(cfg, listing)
    assert "opensearch-knn-3.6.0.0.zip" in str(raised.value)


class RunningProcess:
    returncode = None

    def poll(self):
        return None


def test_make_up_waits_for_k_nn_on_every_node(tmp_path, server):
    port = int(server.url.rsplit(":", 1)[1])
    cfg = config(tmp_path, "2.19.6", port=port)
    # Every other request (GET /, health, ML stats) gets the server's default 200.
    server.answer("GET", "/_cat/plugins", (200, cat_plugins([0], ALL_PLUGINS)))
    testbed.wait_for_nodes(cfg, cfg.cluster, [RunningProcess()])
    assert any(request["path"] == "/_cat/plugins?h=name,component&format=json" for request in server.received)
    assert server.received[-1]["path"] == "/_plugins/_ml/stats"


def test_make_up_fails_clearly_when_a_node_lacks_k_nn(tmp_path, server):
    port = int(server.url.rsplit(":", 1)[1])
    cfg = config(tmp_path, "2.19.6", port=port)
    server.answer("GET", "/_cat/plugins", (200, cat_plugins([0], ALL_PLUGINS[:2])))
    with pytest.raises(testbed.TestbedError, match="opensearch-knn is not loaded on ml-testbed-0"):
        testbed.wait_for_nodes(cfg, cfg.cluster, [RunningProcess()])
    assert not any(request["path"] == "/_plugins/_ml/stats" for request in server.received)


def test_the_s3_port_derives_from_the_emulator_port_unless_set(monkeypatch):
    for name in ("OPENSEARCH_VERSION", "OPENSEARCH_PORT", "OPENSEARCH_NODES", "TESTBED_S3_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_EMULATOR_PORT", "8104")
    assert testbed.Config.from_environment().s3_port == 8604
    monkeypatch.setenv("TESTBED_S3_PORT", "9999")
    assert testbed.Config.from_environment().s3_port == 9999


def test_the_env_file_gives_the_aws_endpoints_key_and_region(tmp_path, monkeypatch):
    monkeypatch.setattr(testbed, "ENV_FILE", tmp_path / "env")
    cfg = testbed.Config(version="2.19.6", port=9200, emulator_port=8104, cache=tmp_path, emulator_host="198.18.168.2",
                         s3_port=8604, s3_host="198.18.168.1")
    testbed.write_env_file(cfg, "sk-test", {"access_key": "AKIATESTBED123456789", "secret_key": "secret with 'quotes'"})
    values = testbed.read_env_file(tmp_path / "env")
    assert values["AWS_ENDPOINT_URL_S3"] == "http://198.18.168.1:8604"
    assert values["BEDROCK_ENDPOINT_URL"] == "http://198.18.168.2:8104/bedrock"
    assert values["SAGEMAKER_ENDPOINT_URL"] == "http://198.18.168.2:8104/sagemaker"
    assert (values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]) == ("AKIATESTBED123456789", "secret with 'quotes'")
    assert (values["AWS_REGION"], values["TESTBED_S3_BUCKET"]) == ("us-east-1", "ml-testbed")


def test_the_aws_key_is_made_once_and_kept(tmp_path):
    state = {}
    key = testbed.aws_key_for(state)
    assert key["access_key"].startswith("AKIA") and len(key["access_key"]) == 20 and len(key["secret_key"]) >= 40
    assert testbed.aws_key_for(state) is key
