import pytest

from pandare import Panda


@pytest.fixture(scope="module")
def panda():
    """One machine per test module: tests start from the root snapshot (a revert takes
    milliseconds), and each deletes its callbacks."""
    machine = Panda(generic="riscv64")
    yield machine


@pytest.fixture(autouse=True)
def no_leftover_callbacks(request):
    yield
    if "panda" in request.fixturenames:
        request.getfixturevalue("panda").delete_callbacks()


def drive(panda, function):
    """Runs `function(panda)` as the blocking function of one run(); returns its result."""
    result = {}

    @panda.queue_blocking
    def blocking():
        panda.revert_sync("root")
        result["value"] = function(panda)
        panda.end_analysis()

    panda.run()
    return result.get("value")
