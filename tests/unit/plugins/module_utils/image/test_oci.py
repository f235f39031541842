# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import parse_platform

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def manifest(**extra):
    doc = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
           "config": {"mediaType": oci.OCI_CONFIG, "digest": D1, "size": 10},
           "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": D2, "size": 20}]}
    doc.update(extra)
    return doc


def index(*platforms):
    return {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        {"mediaType": oci.OCI_MANIFEST, "digest": "sha256:" + f"{i:x}" * 64, "size": 1, "platform": p}
        for i, p in enumerate(platforms, start=1)]}


def test_classify_manifest_and_index():
    mt, doc = oci.classify(json.dumps(manifest()).encode(), oci.OCI_MANIFEST, "m")
    assert mt == oci.OCI_MANIFEST and doc["layers"][0]["digest"] == D2
    kind = oci.classify(json.dumps(index({"os": "linux", "architecture": "amd64"})).encode(), None, "i")[0]
    assert kind == oci.OCI_INDEX


def test_classify_infers_missing_media_type():
    doc = manifest()
    del doc["mediaType"]
    assert oci.classify(json.dumps(doc).encode(), "application/octet-stream", "m")[0] == oci.OCI_MANIFEST


@pytest.mark.parametrize("doc,ctype,match", [
    (manifest(manifests=[]), None, "ambiguous"),
    (manifest(), oci.DOCKER_MANIFEST, "differs from Content-Type"),
    ({"schemaVersion": 1, "name": "x", "fsLayers": []}, oci.DOCKER_SCHEMA1[1], "schema 1"),
    (manifest(schemaVersion=3), None, "schemaVersion"),
    (manifest(layers=[{"digest": "sha256:../../x", "size": 1}]), None, "not a valid digest"),
    (manifest(layers=[{"digest": D2, "size": -1}]), None, "non-negative"),
    (manifest(config=None), None, "descriptor is not an object"),
    (manifest(layers="x"), None, "'layers' list"),
])
def test_classify_rejects(doc, ctype, match):
    with pytest.raises(oci.ManifestError, match=match):
        oci.classify(json.dumps(doc).encode(), ctype, "doc")


def test_classify_rejects_oversize_and_garbage():
    with pytest.raises(oci.ManifestError, match="larger than"):
        oci.classify(b" " * (oci.MAX_MANIFEST_SIZE + 1), None, "doc")
    with pytest.raises(oci.ManifestError, match="not valid JSON"):
        oci.classify(b"{nope", None, "doc")
    with pytest.raises(oci.ManifestError, match="JSON object"):
        oci.classify(b"[]", None, "doc")


@pytest.mark.parametrize("want,expected_index", [
    ("linux/amd64", 1),
    ("linux/arm64", 2),
    ("linux/arm64/v8", 2),
    ("arm64", 2),
    ("linux/arm/v7", 3),
    ("linux/arm", 3),          # arm defaults to v7
    ("linux/arm/v6", 4),
])
def test_select_platform(want, expected_index):
    idx = index({"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64", "variant": "v8"},
                {"os": "linux", "architecture": "arm", "variant": "v7"},
                {"os": "linux", "architecture": "arm", "variant": "v6"})
    chosen = oci.select_platform(idx, parse_platform(want), "idx")
    assert chosen["digest"] == "sha256:" + f"{expected_index:x}" * 64


def test_select_platform_skips_attestations_and_reports_choices():
    idx = index({"os": "unknown", "architecture": "unknown"}, {"os": "linux", "architecture": "s390x"})
    with pytest.raises(oci.ManifestError, match=r"available: linux/s390x"):
        oci.select_platform(idx, parse_platform("linux/amd64"), "idx")


@pytest.mark.parametrize("bad", ["linux/", "a/b/c/d", "/amd64"])
def test_parse_platform_rejects(bad):
    with pytest.raises(Exception, match="platform"):
        parse_platform(bad)


def test_parse_config_checks_diff_ids():
    m = manifest()
    good = {"rootfs": {"type": "layers", "diff_ids": [D3]}}
    assert oci.parse_config(json.dumps(good).encode(), m, "c")["rootfs"]["diff_ids"] == [D3]
    with pytest.raises(oci.ManifestError, match="1 layers"):
        oci.parse_config(json.dumps({"rootfs": {"type": "layers", "diff_ids": [D3, D3]}}).encode(), m, "c")
    with pytest.raises(oci.ManifestError, match="diff_ids"):
        oci.parse_config(json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:x"]}}).encode(), m, "c")
    with pytest.raises(oci.ManifestError, match="missing rootfs"):
        oci.parse_config(b"{}", m, "c")


def test_layer_media_types():
    oci.check_layer_media_type(oci.DOCKER_LAYER_GZIP, D2, "l")
    with pytest.raises(oci.ManifestError, match="foreign/non-distributable"):
        oci.check_layer_media_type("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", D2, "l")
    with pytest.raises(oci.ManifestError, match="unsupported media type"):
        oci.check_layer_media_type("text/plain", D2, "l")
