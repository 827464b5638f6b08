"""NashConv of the paper's games with the core's exact solver, and agreement
with OpenSpiel's exploitability on the turn-based conversions."""

import re

import numpy as np
import pytest

import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability

import vsg_spiel


class _RegimePolicy(policy_lib.Policy):
  """A pure Markov policy: player i plays profiles[regime][i] at every step.

  The regime is read from the information state string (the differential
  game has none: regime 0), so the policy answers at simultaneous-move states
  (with `player_id`) and at turn-based states alike.
  """

  def __init__(self, game, profiles):
    super().__init__(game, list(range(game.num_players())))
    self._profiles = profiles

  def action_probabilities(self, state, player_id=None):
    player = state.current_player() if player_id is None else player_id
    match = re.search(r"regime=(\d+)", state.information_state_string(player))
    regime = int(match.group(1)) if match else 0
    return {self._profiles[regime][player]: 1.0}


# The most turn-based histories at which a test reads a policy object itself
# (every history, to be exact); larger games are evaluated through the
# profile the policy defines, Markov by construction.
_MAX_READ_HISTORIES = 5000


def _markov_profile(mgame, policy):
  """The profile of a policy known to depend on the Markov state only."""
  profile = [np.zeros(mask.shape) for mask in mgame.legal_mask]
  for index, state in enumerate(mgame.states):
    for player in range(mgame.num_players):
      for action, probability in policy.action_probabilities(
          state, player).items():
        profile[player][index, action] = probability
  return profile


def _policy_or_profile(game, policy):
  mgame = vsg_spiel.markov_game(game)
  if vsg_spiel.core.turn_based_tree_size(mgame) <= _MAX_READ_HISTORIES:
    return game, policy
  return mgame, _markov_profile(mgame, policy)


def _grid_index(game, value):
  return int(np.flatnonzero(game.action_values == value)[0])


# (a) Both optima of the differential game are pure equilibria.


@pytest.mark.parametrize("spec", [
    "python_vsg_differential(horizon=1)",
    "python_vsg_differential(horizon=2)",
    "python_vsg_differential(num_actions=21,horizon=3)",
    "python_vsg_differential",
])
def test_differential_optima_have_zero_nash_conv(spec):
  game = pyspiel.load_game(spec)
  horizon = game.horizon
  for value, reward in ((5.0, 10.0), (-5.0, 0.0)):
    action = _grid_index(game, value)
    policy = _policy_or_profile(game, _RegimePolicy(game, [(action, action)]))
    assert vsg_spiel.nash_conv(*policy) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(vsg_spiel.deviation_gains(*policy),
                               [0.0, 0.0], atol=1e-9)
    mgame = vsg_spiel.markov_game(game)
    values = vsg_spiel.policy_values(
        mgame, vsg_spiel.pure_profile(mgame, [action, action]))
    np.testing.assert_allclose(mgame.initial_distribution @ values,
                               [reward * horizon] * 2)
  # At (0, 0) each player gains 20/9 per step by moving to -5.
  action = _grid_index(game, 0.0)
  policy = _policy_or_profile(game, _RegimePolicy(game, [(action, action)]))
  np.testing.assert_allclose(vsg_spiel.deviation_gains(*policy),
                             [20 / 9 * horizon] * 2, atol=1e-9)


# (b) The Phi-minimising grid profile of the routing game is an equilibrium.


@pytest.mark.parametrize("spec", [
    "python_vsg_routing(horizon=1)",
    "python_vsg_routing(network=pigou,num_players=3,horizon=1)",
    "python_vsg_routing",  # Braess, 2 players, 25 stages, 2 regimes.
    "python_vsg_routing(network=braess,num_players=4,split_levels=2,"
    "horizon=3)",
    "python_vsg_routing(network=parallel,num_players=3,split_levels=3,"
    "latency_a=1 2 0.5,latency_b=0 0.5 1,horizon=4,"
    "regime_scales=0.5 1 2,regime_transition=0.5 0.5 0;0 0.5 0.5;0.5 0 0.5)",
    "python_vsg_routing(network=parallel,num_players=8,split_levels=1,"
    "latency_a=1 0,latency_b=0 1,horizon=2)",
])
def test_routing_grid_potential_minimiser_has_zero_nash_conv(spec):
  game = pyspiel.load_game(spec)
  levels = game.get_parameters()["split_levels"]
  profiles = [game.model.grid_equilibrium(levels, scale)
              for scale in game.regimes.scales]
  policy = _policy_or_profile(game, _RegimePolicy(game, profiles))
  assert vsg_spiel.nash_conv(*policy) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("spec", [
    "python_vsg_routing",
    "python_vsg_routing(network=parallel,num_players=3,split_levels=3,"
    "latency_a=1 2 0.5,latency_b=0 0.5 1,horizon=4,"
    "regime_scales=0.5 1 2,regime_transition=0.5 0.5 0;0 0.5 0.5;0.5 0 0.5)",
])
def test_routing_regime_zero_profile_everywhere_is_exploitable(spec):
  """In these games the regime-0 minimiser is no equilibrium of the other
  regimes' stage games, so the equilibrium must depend on the regime."""
  game = pyspiel.load_game(spec)
  levels = game.get_parameters()["split_levels"]
  first = game.model.grid_equilibrium(levels, game.regimes.scales[0])
  stubborn = _policy_or_profile(
      game, _RegimePolicy(game, [first] * game.regimes.num_regimes))
  assert vsg_spiel.nash_conv(*stubborn) > 0.1


# (c) Our NashConv equals OpenSpiel's on random policies.


@pytest.mark.parametrize("spec", [
    "python_vsg_differential(num_actions=5,horizon=1)",
    "python_vsg_differential(num_actions=5,horizon=2)",
    "python_vsg_routing(network=braess,split_levels=2,horizon=1)",
    "python_vsg_routing(network=braess,split_levels=2,horizon=2)",
    "python_vsg_routing(network=pigou,num_players=3,split_levels=2,"
    "horizon=2)",
    "python_vsg_routing(network=parallel,split_levels=2,horizon=2,"
    "latency_a=1 2 0.5,latency_b=0 0.5 1,initial_regime=1)",
])
def test_nash_conv_equals_openspiel_on_random_policies(spec):
  game = pyspiel.load_game(spec)
  mgame = vsg_spiel.MarkovGame.from_openspiel(game)
  assert mgame.num_actions == (game.num_distinct_actions(),) * \
      game.num_players()
  turn_based = pyspiel.convert_to_turn_based(game)
  rng = np.random.default_rng(0)
  for _ in range(3):
    policy = vsg_spiel.to_policy(mgame, vsg_spiel.random_profile(mgame, rng))
    theirs = exploitability.nash_conv(turn_based, policy,
                                      return_only_nash_conv=False)
    np.testing.assert_allclose(vsg_spiel.deviation_gains(game, policy),
                               theirs.player_improvements, rtol=0, atol=1e-9)
    assert vsg_spiel.nash_conv(game, policy) == pytest.approx(
        theirs.nash_conv, abs=1e-9)
