"""The stand-in KFP server refuses what the real v2beta1 API refuses, and publish/submit work with both modes.

Each refusal below is the real server's (kubeflow/pipelines backend/src/apiserver: template/v2_template.go,
list/list.go, resource/resource_manager.go, server/experiment_server.go, server/run_server.go).
"""

from __future__ import annotations

import json

import pytest
import yaml

from teacherlm_core.errors import TeacherLMError
from teacherlm_core.kfp_support import client as kfp_client
from teacherlm_core.kfp_support.specs import find_spec

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client keeps a context file under ~/.config
    monkeypatch.delenv("KF_PIPELINES_SA_TOKEN_PATH", raising=False)
    return tmp_path


def _api(url: str):
    import kfp_server_api

    config = kfp_server_api.Configuration(host=url)
    return kfp_server_api.ApiClient(config)


def _status(fn, *args, **kwargs) -> tuple[int, str]:
    import kfp_server_api

    with pytest.raises(kfp_server_api.ApiException) as err:
        fn(*args, **kwargs)
    return err.value.status, json.loads(err.value.body)["message"]


def test_uploads_keep_every_document_and_refuse_bad_ones(home, tmp_path):
    """The compiled specs are two documents (pipeline spec, kubernetes platform spec): both are kept;
    two pipeline specs, none, or another schema version are refused."""
    import kfp_server_api
    from fake_kfp import FakeKFP

    spec_file = find_spec("augment")
    docs = list(yaml.safe_load_all(spec_file.read_text()))
    assert len(docs) == 2 and "kubernetes" in docs[1]["platforms"]
    with FakeKFP() as server:
        upload = kfp_server_api.PipelineUploadServiceApi(_api(server.url))
        pipeline = upload.upload_pipeline(str(spec_file), name="augment")
        (version,) = server.state.versions[pipeline.pipeline_id]
        assert version["pipeline_spec"] == docs[0] and version["platform_spec"] == docs[1]
        bad = {
            "two-specs.yaml": [docs[0], docs[0]],
            "no-spec.yaml": [docs[1]],
            "old-schema.yaml": [docs[0] | {"schemaVersion": "2.0.0"}],
        }
        for name, content in bad.items():
            path = tmp_path / name
            path.write_text(yaml.safe_dump_all(content))
            status, message = _status(upload.upload_pipeline, str(path), name=name)
            assert status == 400 and "Invalid pipeline spec" in message, (name, message)


def test_lists_are_paged_as_the_real_server_pages_them(home):
    import kfp_server_api
    from fake_kfp import FakeKFP

    with FakeKFP() as server:
        pipelines = kfp_server_api.PipelineServiceApi(_api(server.url))
        for i in range(45):
            pipelines.pipeline_service_create_pipeline(
                kfp_server_api.V2beta1Pipeline(display_name=f"p{i:02d}")
            )
        first = pipelines.pipeline_service_list_pipelines()
        assert len(first.pipelines) == 20 and first.total_size == 45  # page_size 0 means 20
        names, token = [], ""
        while True:
            page = pipelines.pipeline_service_list_pipelines(page_size=7, page_token=token)
            names += [p.display_name for p in page.pipelines]
            token = page.next_page_token
            if not token:
                break
        assert names == [f"p{i:02d}" for i in range(45)]
        assert len(pipelines.pipeline_service_list_pipelines(page_size=1000).pipelines) == 45  # capped at 200
        assert _status(pipelines.pipeline_service_list_pipelines, page_size=-1)[0] == 400
        assert _status(pipelines.pipeline_service_list_pipelines, page_token="not a token")[0] == 400


def test_run_bodies_are_checked(home):
    """A run needs a name, exactly one spec source, and an existing pipeline version."""
    import kfp_server_api
    from fake_kfp import FakeKFP

    spec = yaml.safe_load_all(find_spec("student").read_text())
    pipeline_spec = next(spec)
    with FakeKFP() as server:
        runs = kfp_server_api.RunServiceApi(_api(server.url))
        ref = kfp_server_api.V2beta1PipelineVersionReference(pipeline_id="p", pipeline_version_id="v")
        cases = {
            "no name": kfp_server_api.V2beta1Run(pipeline_spec=pipeline_spec),
            "no spec": kfp_server_api.V2beta1Run(display_name="r"),
            "both": kfp_server_api.V2beta1Run(display_name="r", pipeline_spec=pipeline_spec,
                                              pipeline_version_reference=ref),
            "unknown version": kfp_server_api.V2beta1Run(display_name="r", pipeline_version_reference=ref),
            "invalid spec": kfp_server_api.V2beta1Run(display_name="r", pipeline_spec={"pipelineInfo": {}}),
        }  # fmt: skip
        for what, body in cases.items():
            status, _ = _status(runs.run_service_create_run, body)
            assert status in (400, 404), what
        assert runs.run_service_create_run(
            kfp_server_api.V2beta1Run(display_name="r", pipeline_spec=pipeline_spec)
        )


def test_multi_user_mode_needs_namespaces(home):
    import kfp_server_api
    from fake_kfp import FakeKFP

    with FakeKFP(multi_user=True) as server:
        api = _api(server.url)
        experiments = kfp_server_api.ExperimentServiceApi(api)
        status, message = _status(experiments.experiment_service_list_experiments)
        assert status == 400 and "empty namespace in multi-user mode" in message
        status, _ = _status(
            experiments.experiment_service_create_experiment,
            kfp_server_api.V2beta1Experiment(display_name="e"),
        )
        assert status == 400
        runs = kfp_server_api.RunServiceApi(api)
        body = kfp_server_api.V2beta1Run(
            display_name="r", pipeline_spec=next(yaml.safe_load_all(find_spec("student").read_text()))
        )
        assert "Experiment id can not be empty" in _status(runs.run_service_create_run, body)[1]


def test_publish_and_submit_on_a_multi_user_server(home):
    """Published into a profile namespace, found there again (not re-created); runs go to that
    namespace; without one, submit says what to pass instead of a raw 400."""
    from fake_kfp import FakeKFP

    with FakeKFP(multi_user=True) as server:
        first = kfp_client.publish(server.url, ("augment",), namespace="team-a")
        again = kfp_client.publish(server.url, ("augment",), namespace="team-a")
        assert [r["status"] for r in first] == ["created"] and [r["status"] for r in again] == ["exists"]
        assert {p["namespace"] for p in server.state.pipelines.values()} == {"team-a"}
        run = kfp_client.submit("augment", server.url, {"num_shards": "2"}, namespace="team-a")
        assert run["source"] == f"version {first[0]['version_id']}"
        assert server.state.runs[run["run_id"]]["namespace"] == "team-a"
        with pytest.raises(TeacherLMError, match="multi-user mode: pass --namespace"):
            kfp_client.submit("augment", server.url, {"num_shards": "2"})


def test_submit_finds_a_shared_pipeline_from_a_namespace(home):
    """Published shared (no namespace), run from a profile namespace: the published version runs."""
    from fake_kfp import FakeKFP

    with FakeKFP(multi_user=True) as server:
        (published,) = kfp_client.publish(server.url, ("student",))
        run = kfp_client.submit("student", server.url, {}, namespace="team-b")
        assert run["source"] == f"version {published['version_id']}"


def test_runs_use_the_projects_service_account_not_default_editor(home):
    """submit names teacherlm-pipeline-runner (manifests/base/rbac.yaml) unless told otherwise; '' or None
    leaves the server's default (default-editor on multi-user Kubeflow); a server whose allow list
    lacks the account refuses in one line that names it."""
    from fake_kfp import FakeKFP

    with FakeKFP(multi_user=True) as server:
        kfp_client.publish(server.url, ("student",), namespace="team-a")
        run = kfp_client.submit("student", server.url, {}, namespace="team-a")
        assert server.state.runs[run["run_id"]]["service_account"] == "teacherlm-pipeline-runner"
        run = kfp_client.submit("student", server.url, {}, namespace="team-a", service_account=None)
        assert server.state.runs[run["run_id"]]["service_account"] == "default-editor"
    with FakeKFP(multi_user=True, allowed_service_accounts=["other-runner"]) as server:
        kfp_client.publish(server.url, ("student",), namespace="team-a")
        with pytest.raises(
            TeacherLMError, match=r"refused the run \(400\).*not allowed.*teacherlm-pipeline-runner"
        ):
            kfp_client.submit("student", server.url, {}, namespace="team-a")
    with FakeKFP(multi_user=True, allowed_service_accounts=["teacherlm-pipeline-runner"]) as server:
        kfp_client.publish(server.url, ("student",), namespace="team-a")
        run = kfp_client.submit("student", server.url, {}, namespace="team-a")
        assert server.state.runs[run["run_id"]]["service_account"] == "teacherlm-pipeline-runner"
