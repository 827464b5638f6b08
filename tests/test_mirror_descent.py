"""The engine's mirror descent against OpenSpiel's, iterate for iterate."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python.mfg.algorithms import mirror_descent as openspiel_md
from open_spiel.python.mfg.algorithms import nash_conv

from vsg_spiel import mfg_engine
from vsg_spiel.algorithms import mirror_descent


@pytest.mark.parametrize("name", (
    "mfg_crowd_modelling(size=5,horizon=4)",
    "python_mfg_crowd_modelling(size=5,horizon=4)",
    "mfg_garnet(size=5,horizon=4)",
    "python_mfg_predator_prey(horizon=3)",
    "python_mfg_dynamic_routing",
    "mfg_dynamic_routing"))
def test_mirror_descent_reproduces_openspiel(name):
  engine = mfg_engine.MeanFieldEngine(pyspiel.load_game(name))
  ours = mirror_descent.MirrorDescent(engine.game, lr=0.5, engine=engine)
  theirs = openspiel_md.MirrorDescent(engine.game, lr=0.5)
  for iteration in range(5):
    ours.iteration()
    theirs.iteration()
    assert ours.iteration_count == iteration + 1
    rows = ours.mean_field.structure.reachable_rows
    np.testing.assert_allclose(
        engine.policy_function(ours.policy())(rows),
        engine.policy_function(theirs.get_policy())(rows), atol=1e-8)
    assert ours.nash_conv() == pytest.approx(
        nash_conv.NashConv(engine.game, theirs.get_policy()).nash_conv(),
        abs=1e-8)
  for state in engine.row_states(rows):
    key = state.observation_string(pyspiel.PlayerId.DEFAULT_PLAYER_ID)
    assert ours.distribution.value_str(key) == pytest.approx(
        theirs.distribution.value_str(key), abs=1e-8)


@pytest.mark.parametrize("lr", [0.0, -1.0, float("nan"), float("inf"), "x"])
def test_mirror_descent_rejects_bad_learning_rate(lr):
  with pytest.raises(ValueError, match="lr must be a finite real number"):
    mirror_descent.MirrorDescent(pyspiel.load_game("mfg_garnet"), lr=lr)
