"""Observation keys that are not Markov in a finite-horizon game.

Pig's turn limit is not in its observation, so (move number, observation)
merges histories that continue differently. OpenSpiel's own NashConv cannot
check it (pig has no information state strings), so the right value is a
brute-force best response over pig's tree, written here.
"""

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib

import vsg_spiel
from vsg_spiel import core
from vsg_spiel.algorithms import vpg

PIG = "pig(horizon=4,winscore=6)"


def _brute_force_nash_conv(state, num_players):
  """Sum over players of (best response value - value) against the uniform
  policy, by recursion over the tree: a perfect-information game's best
  response may depend on the whole history."""

  def values(state, responder):
    if state.is_terminal():
      return np.asarray(state.returns())
    if state.is_chance_node():
      return sum(p * values(state.child(a), responder)
                 for a, p in state.chance_outcomes())
    children = [values(state.child(a), responder)
                for a in state.legal_actions()]
    if state.current_player() == responder:
      return max(children, key=lambda v: v[responder])
    return sum(children) / len(children)

  uniform = values(state, None)
  return sum(values(state, player)[player] - uniform[player]
             for player in range(num_players))


def test_pig_nash_conv_of_uniform_equals_history_key_and_brute_force():
  game = pyspiel.load_game(PIG)
  by_history = core.MarkovGame.from_openspiel(game, state_key="history")
  expected = _brute_force_nash_conv(game.new_initial_state(), 2)
  ours = vsg_spiel.nash_conv(game, policy_lib.UniformRandomPolicy(game))
  history_keyed = vsg_spiel.nash_conv(
      by_history, vsg_spiel.uniform_profile(by_history))
  assert ours == pytest.approx(expected, abs=1e-12)
  assert history_keyed == pytest.approx(expected, abs=1e-12)
  # The merged observation key gave 0.8755787; the right value is lower.
  assert expected == pytest.approx(0.8686342592592591, abs=1e-12)
  assert vsg_spiel.markov_game(game).state_key == "history"
  gains = vsg_spiel.deviation_gains(game,
                                    policy_lib.UniformRandomPolicy(game))
  assert np.sum(gains) == pytest.approx(expected, abs=1e-12)


def test_explicit_observation_key_names_histories_and_remedy():
  game = pyspiel.load_game(PIG)
  with pytest.raises(vsg_spiel.NonMarkovObservationError) as error:
    core.MarkovGame.from_openspiel(game, state_key="observation")
  message = str(error.value)
  assert "pig(horizon=4,winscore=6)" in message
  assert "not a Markov state" in message
  assert 'state_key="history"' in message
  first, second = error.value.histories
  assert first != second
  assert str(first) in message and str(second) in message
  # The two histories share the key (move number, observation).
  states = [game.new_initial_state() for _ in range(2)]
  for state, history in zip(states, (first, second)):
    for action in history:
      state.apply_action(action)
  assert core.key_of("observation", states[0]) == core.key_of(
      "observation", states[1])


def test_history_fallback_keeps_the_size_limit():
  game = pyspiel.load_game(PIG)
  observation_states = 112  # the (wrong) merged game's states
  history_states = core.MarkovGame.from_openspiel(
      game, state_key="history").num_states
  assert history_states > observation_states
  with pytest.raises(ValueError, match="not a Markov state.*max_states"):
    core.MarkovGame.from_openspiel(game, max_states=observation_states + 1)


@pytest.mark.parametrize("spec", [
    "oshi_zumo(coins=3,size=1,horizon=4)",
    "goofspiel(num_cards=3,imp_info=False)",
    "matrix_pd",
])
def test_markov_observation_key_is_kept(spec):
  game = pyspiel.load_game(spec)
  mgame = core.MarkovGame.from_openspiel(game)
  by_history = core.MarkovGame.from_openspiel(game, state_key="history")
  assert mgame.state_key == "observation"
  assert mgame.num_states <= by_history.num_states
  profile = vsg_spiel.uniform_profile(mgame)
  assert vsg_spiel.nash_conv(mgame, profile) == pytest.approx(
      vsg_spiel.nash_conv(by_history, vsg_spiel.uniform_profile(by_history)),
      abs=1e-12)


def test_vpg_on_pig_solves_the_history_keyed_game():
  game = pyspiel.load_game(PIG)
  solver = vpg.VPGSolver(game)
  assert solver.mgame.state_key == "history"
  start = vsg_spiel.nash_conv(solver.mgame, solver.profile())
  for _ in range(3):
    solver.iteration()
  assert np.isfinite(vsg_spiel.nash_conv(solver.mgame, solver.profile()))
  assert vsg_spiel.nash_conv(solver.mgame, solver.profile()) < start
