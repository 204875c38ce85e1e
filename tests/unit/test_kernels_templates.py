"""kernels/templates.py: the site's own kernel templates beside the package's (folders with a template.json), their
default options under what the user sends, and the kernel.json they write."""

from __future__ import annotations

import json

import pytest

from dkrzspawner.kernels import templates

GPU = {"display_name": "Python on a GPU via Slurm", "description": "The gpu partition, one GPU.",
       "options": {"partition": "gpu", "gpus": 1, "runtime": "02:00:00"}}


@pytest.fixture
def site_templates(tmp_path, monkeypatch):
    """A site folder of templates: a good one, and four that are left out (bad JSON, an unknown field, a package
    template's name, an unknown base)."""
    def put(name, text):
        (tmp_path / name).mkdir()
        (tmp_path / name / "template.json").write_text(text if isinstance(text, str) else json.dumps(text))
    put("python-gpu", GPU)
    put("broken", "{not json")
    put("extra", {"display_name": "X", "image": "docker://x"})
    put("python-slurm", {"display_name": "Ours instead"})
    put("r-slurm", {"display_name": "R", "base": "r-kernel"})
    monkeypatch.setenv(templates.SITE_TEMPLATES_ENV, f"{tmp_path}:{tmp_path / 'missing'}")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_the_sites_templates_follow_the_packages_and_bad_ones_are_left_out_with_a_warning(site_templates, caplog):
    with caplog.at_level("WARNING"):
        listed = templates.template_list()
    assert [t["name"] for t in listed] == ["python-slurm", "conda-slurm", "python-gpu"]
    assert listed[0]["display_name"] == "Python via Slurm", "a site cannot replace a package template"
    assert listed[2] == {"name": "python-gpu", "display_name": GPU["display_name"], "needs_environment": False,
                         "description": GPU["description"], "options": GPU["options"]}
    left_out = sorted(r.getMessage().split(" is left out")[0].rsplit("/", 2)[1] for r in caplog.records)
    assert left_out == ["broken", "extra", "python-slurm", "r-slurm"]


def test_no_site_folder_gives_the_packages_templates(monkeypatch, tmp_path):
    monkeypatch.setenv(templates.SITE_TEMPLATES_ENV, str(tmp_path / "none"))
    assert list(templates.templates()) == ["python-slurm", "conda-slurm"]


@pytest.mark.parametrize("sent, expected", [
    ({"cores": 4}, {"partition": "gpu", "gpus": 1, "runtime": "02:00:00", "cores": 4}),
    ({"gpus": 2, "runtime": "01:00:00"}, {"partition": "gpu", "gpus": 2, "runtime": "01:00:00"}),
    ({"preset": "shared"}, {"runtime": "02:00:00", "preset": "shared"}),
    ({"partition": "shared"}, {"partition": "shared", "gpus": 1, "runtime": "02:00:00"}),
])
def test_the_users_options_win_over_the_templates_defaults(sent, expected):
    assert templates.with_defaults(GPU["options"], sent) == expected
    assert templates.with_defaults({"preset": "shared", "cores": 2}, {"partition": "gpu"}) == \
        {"cores": 2, "partition": "gpu"}


async def test_a_kernel_from_a_site_template_is_the_base_templates_with_the_defaults(site_templates):
    written = await templates.create_kernel("python-gpu", "my-gpu", options={"cores": 2}, with_slurm=False)
    spec = json.loads((written.folder / "kernel.json").read_text())
    assert spec["metadata"]["dkrzspawner"]["template"] == "python-gpu"
    assert spec["metadata"]["kernel_provisioner"] == {
        "provisioner_name": "dkrz-slurm-provisioner",
        "config": {"partition": "gpu", "gpus": 1, "runtime": "02:00:00", "cores": 2}}
    with pytest.raises(templates.KernelRefused) as refused:
        await templates.create_kernel("r-slurm", "my-r", options={}, with_slurm=False)
    assert refused.value.field == "template"
    assert str(refused.value) == "Template 'r-slurm' is not one of python-slurm, conda-slurm, python-gpu."
