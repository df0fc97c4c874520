"""The function's exception from its "closed" message, as the step failure shows it."""

from dagster_pipes_cloud.orchestration.reader import remote_error_from_pipes


def closed_exception(name: str, message: str) -> dict[str, object]:
    return {"name": name, "message": message, "stack": ['  File "f.py", line 1, in f\n']}


def test_a_builtin_type_is_said_once() -> None:
    remote = remote_error_from_pipes(closed_exception("ValueError", "ValueError: boom\n"))
    assert str(remote).splitlines()[0] == "ValueError: boom"


def test_a_qualified_type_is_said_once() -> None:
    exception = closed_exception("DagsterPipesError", "dagster_pipes.DagsterPipesError: bad key\n")
    assert remote_error_from_pipes(exception).headline == "DagsterPipesError: bad key"


def test_an_exception_without_a_message() -> None:
    remote = remote_error_from_pipes(closed_exception("KeyboardInterrupt", "KeyboardInterrupt\n"))
    assert remote.headline == "KeyboardInterrupt"
    assert 'File "f.py", line 1' in str(remote)
