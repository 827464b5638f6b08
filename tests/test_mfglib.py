"""MFGLib's ten environments on the tabular engine, checked against MFGLib.

Skipped when the peer libraries (mfglib, torch) are not installed (the
README's "Peer libraries" says how to install them). MFGLib runs in float64
here (torch's default dtype is switched per test), so that numbers agree to
1e-9.
"""

import functools

import numpy as np
import pytest

_INSTALL = ("pip install -e '.[peers]' && pip install --no-deps "
            "mfglib==0.3.0 (README, 'Peer libraries')")
torch = pytest.importorskip(
    "torch", reason=f"peer library torch not installed: {_INSTALL}")
pytest.importorskip(
    "mfglib", reason=f"peer library mfglib not installed: {_INSTALL}")

# pylint: disable=g-import-not-at-top,wrong-import-position
from mfglib.alg import OnlineMirrorDescent
from mfglib.alg import PriorDescent
from mfglib.alg import prior_descent
from mfglib.alg.q_fn import QFn
from mfglib.scoring import exploitability_score
from mfglib.utils import mean_field_from_policy

from vsg_spiel import mfg_engine
from vsg_spiel import mfglib_adapter
from vsg_spiel import mfglib_native
from vsg_spiel.algorithms import mf_bayesian_q
from vsg_spiel.algorithms import mirror_descent

NUM_ITERATIONS = 20
ENVIRONMENTS = mfglib_adapter.ENVIRONMENT_NAMES
# Smaller than the defaults where MFGLib's own calls take seconds (its
# linear_quadratic transition loops over states, actions and noise values);
# benchmarks/mfg.py checks the default sizes.
TEST_PARAMS = {
    "building_evacuation": dict(n_floor=3, floor_l=5, floor_w=5),
    "crowd_motion": dict(torus_l=8, torus_w=8),
    "linear_quadratic": dict(el=2, m=1),
    "susceptible_infected": dict(T=10),
}


@pytest.fixture(autouse=True)
def float64_torch():
  default = torch.get_default_dtype()
  torch.set_default_dtype(torch.float64)
  yield
  torch.set_default_dtype(default)


@functools.lru_cache(maxsize=None)
def _environment_and_engine(name):
  default = torch.get_default_dtype()
  torch.set_default_dtype(torch.float64)
  try:
    env = mfglib_adapter.environment(name, **TEST_PARAMS.get(name, {}))
  finally:
    torch.set_default_dtype(default)
  return env, mfglib_adapter.MFGLibEngine(env)


def random_table(engine, seed):
  """A random policy with every action possible, (num_rows, num_actions)."""
  table = np.random.default_rng(seed).uniform(
      0.05, 1.0, (engine.num_rows, engine.num_actions))
  return table / table.sum(axis=1, keepdims=True)


def uniform_tensor(env):
  return torch.ones((env.T + 1,) + env.S + env.A) / env.n_actions


def iterate_both(env, ours, algorithm):
  """NUM_ITERATIONS iterations of our solver and of MFGLib's `algorithm`.

  Returns:
    MFGLib's last state.
  """
  state = algorithm.init_state(env, uniform_tensor(env))
  for _ in range(NUM_ITERATIONS):
    state = algorithm.step_next_state(state, atol=None, rtol=None)
    ours.iteration()
  return state


def q_values(engine, mean_field, decision_value):
  """Q_t(s, a) at every row from a backward pass, (num_rows, num_actions)."""
  table = np.zeros((engine.num_rows, engine.num_actions))

  def record(layer, q):
    table[layer.decision_rows] = q
    return decision_value(layer, q)

  engine.backward(mean_field, record)
  return table


class SoftQFn(QFn):
  """MFGLib's QFn with eq. 11's soft value in place of the max.

  V_{t+1}(s') = eta log sum_a prior_{t+1}(a|s') exp(Q_{t+1}(s', a) / eta).
  """

  def __init__(self, env, mean_field, *, prior, eta, verify_integrity=True):
    super().__init__(env, mean_field, verify_integrity=verify_integrity)
    self.prior, self.eta = prior, eta

  def optimal(self):
    num_state_dims = len(self.env.S)

    def future_rewards(t, q):
      logits = (torch.log(self.prior[t + 1]) + q[t + 1] / self.eta)
      values = self.eta * torch.logsumexp(
          logits.flatten(start_dim=num_state_dims), dim=-1)
      return self._transition_probabilities(t) @ values.flatten()

    return self._compute_q_values(future_rewards)


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_mean_field_and_q_functions_equal_mfglib(name):
  """L, Q^pi and Q* of a random policy equal MFGLib's to 1e-9."""
  env, engine = _environment_and_engine(name)
  table = random_table(engine, seed=1)
  mean_field = engine.mean_field(lambda rows: table[rows])
  pi = engine.policy_tensor(table)
  their_mean_field = mean_field_from_policy(pi, env=env)
  np.testing.assert_allclose(engine.state_action_mean_field(mean_field),
                             their_mean_field.numpy(), rtol=0, atol=1e-12)
  q_fn = QFn(env, their_mean_field)
  policy_q = q_values(engine, mean_field,
                      lambda layer, q: np.sum(table[layer.decision_rows] * q,
                                              axis=1))
  optimal_q = q_values(engine, mean_field,
                       lambda layer, q: np.max(q, axis=1))
  np.testing.assert_allclose(policy_q, engine.policy_table(q_fn.for_policy(pi)),
                             rtol=1e-12, atol=1e-9)
  np.testing.assert_allclose(optimal_q, engine.policy_table(q_fn.optimal()),
                             rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_compiled_values_equal_backward_induction(name):
  """policy_value and best_response_value (one compiled pass each) equal
  `backward` with the policy's expectation and the max at every node
  (root, decision, (t, s, a) and chance nodes) to 1e-12, and leave the
  sentinel at 0; so do NashConv and the KL-regularised best response."""
  _, engine = _environment_and_engine(name)
  table = random_table(engine, seed=5)
  mean_field = engine.mean_field(lambda rows: table[rows])
  for compiled, decision_value in (
      (engine.policy_value,
       lambda layer, q: np.sum(table[layer.decision_rows] * q, axis=1)),
      (engine.best_response_value, lambda layer, q: np.max(q, axis=1))):
    expected = engine.backward(mean_field, decision_value)
    values = compiled(mean_field)
    assert values.shape == (engine.num_nodes + 1,) and values[-1] == 0.0
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-12)
  # NashConv (one compiled call) and the KL-regularised best response (one
  # compiled pass) equal the engine's generic code on the same backward.
  assert engine.nash_conv(mean_field) == pytest.approx(
      mfg_engine.MeanFieldEngine.nash_conv(engine, mean_field),
      rel=1e-12, abs=1e-12)
  log_prior = np.log(random_table(engine, seed=6))
  for temperature in (0.3, 1.0):
    responses = [np.full(log_prior.shape, np.nan) for _ in range(2)]
    compiled = engine.kl_regularised_best_response(
        mean_field, log_prior, temperature, responses[0])
    generic = mfg_engine.MeanFieldEngine.kl_regularised_best_response(
        engine, mean_field, log_prior, temperature, responses[1])
    for ours, expected in zip(compiled + (responses[0],),
                              generic + (responses[1],)):
      assert ours.shape == expected.shape
      np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(responses[0].sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_exploitability_equals_mfglib(name):
  """engine.nash_conv == mfglib.scoring.exploitability_score, same policy."""
  env, engine = _environment_and_engine(name)
  for table in (engine.uniform_policy(np.arange(engine.num_rows)),
                random_table(engine, seed=2)):
    ours = engine.nash_conv(engine.mean_field(lambda rows, t=table: t[rows]))
    theirs = exploitability_score(env, engine.policy_tensor(table))
    assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-9)
    assert ours >= -1e-9


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_mf_bql_iterates_equal_prior_descent_with_soft_q(name, monkeypatch):
  """MF-BQL == MFGLib's PriorDescent(n_inner=1) with eq. 11's soft Q.

  MFGLib's own step (prior times exp(Q / eta), normalised, the prior then
  replaced by the iterate) with its QFn swapped for SoftQFn, 20 iterations,
  iterates and exploitability to 1e-6.
  """
  env, engine = _environment_and_engine(name)
  temperature = 1.0
  solver = mf_bayesian_q.MFBayesianQLearning(engine.game,
                                             temperature=temperature,
                                             engine=engine)
  algorithm = PriorDescent(eta=temperature, n_inner=1)
  state = algorithm.init_state(env, uniform_tensor(env))
  for _ in range(NUM_ITERATIONS):
    monkeypatch.setattr(prior_descent, "QFn", functools.partial(
        SoftQFn, prior=state.q, eta=temperature))
    state = algorithm.step_next_state(state, atol=None, rtol=None)
    solver.iteration()
    np.testing.assert_allclose(solver.mean_field.policy,
                               engine.policy_table(state.pi),
                               rtol=0, atol=1e-6)
  monkeypatch.undo()
  assert engine.nash_conv(solver.mean_field) == pytest.approx(
      exploitability_score(env, solver.policy()), abs=1e-6)


def test_mf_bql_and_prior_descent_agree_when_last_rewards_ignore_actions():
  """On left_right and rock_paper_scissors (T=1, r_1 action-free) soft and
  hard values coincide: MF-BQL equals MFGLib's unmodified PriorDescent."""
  for name in ("left_right", "rock_paper_scissors"):
    env, engine = _environment_and_engine(name)
    solver = mf_bayesian_q.MFBayesianQLearning(engine.game, engine=engine)
    state = iterate_both(env, solver, PriorDescent(eta=1.0, n_inner=1))
    np.testing.assert_allclose(solver.mean_field.policy,
                               engine.policy_table(state.pi), atol=1e-9)


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_mirror_descent_iterates_equal_online_mirror_descent(name):
  """The engine's MirrorDescent == MFGLib's OnlineMirrorDescent (same lr).

  Both accumulate lr * Q^pi(s, a) (the value of the child (t, s, a)) and
  take the softmax; 20 iterations, iterates to 1e-9.
  """
  env, engine = _environment_and_engine(name)
  learning_rate = 0.1
  ours = mirror_descent.MirrorDescent(engine.game, lr=learning_rate,
                                      engine=engine)
  state = iterate_both(env, ours, OnlineMirrorDescent(alpha=learning_rate))
  np.testing.assert_allclose(ours.mean_field.policy,
                             engine.policy_table(state.pi), atol=1e-9)
  assert ours.nash_conv() == pytest.approx(
      exploitability_score(env, state.pi), abs=1e-9)


def test_functions_that_read_the_mean_field_are_re_read():
  """r_t and P_t are read once only where they ignore L_t.

  Per t: conservative_treasure_hunting's r_0 and P_0 ignore L_0, its later
  ones read it; susceptible_infected's rewards are constant, its
  transitions read L_t; random_linear reads it everywhere. Under policies
  whose mean fields differ, L and the exploitability (the rewards and
  transitions under L) still equal MFGLib's (as the iterates do,
  test_mf_bql_iterates_equal_prior_descent_with_soft_q).
  """
  expected = {
      "conservative_treasure_hunting": (lambda t: t == 0, lambda t: t == 0),
      "susceptible_infected": (lambda t: True, lambda t: False),
      "random_linear": (lambda t: False, lambda t: False),
      "crowd_motion": (lambda t: False, lambda t: True),
  }
  for name, (static_reward, static_transition) in expected.items():
    env, engine = _environment_and_engine(name)
    assert engine.static_rewards == tuple(
        static_reward(t) for t in range(env.T + 1)), name
    assert engine.static_transitions == tuple(
        static_transition(t) for t in range(env.T)), name
    for seed in (3, 4):
      table = random_table(engine, seed)
      mean_field = engine.mean_field(lambda rows, t=table: t[rows])
      pi = engine.policy_tensor(table)
      np.testing.assert_allclose(
          engine.state_action_mean_field(mean_field),
          mean_field_from_policy(pi, env=env).numpy(), rtol=0, atol=1e-12)
      assert engine.nash_conv(mean_field) == pytest.approx(
          exploitability_score(env, pi), rel=1e-10, abs=1e-9)


def through_torch(env):
  """`env` with its functions wrapped, so that MFGLibEngine does not
  recognise MFGLib's example classes and calls them through torch."""
  from mfglib.env import Environment  # pylint: disable=g-import-not-at-top
  return Environment(
      T=env.T, S=env.S, A=env.A, mu0=env.mu0, r_max=env.r_max,
      reward_fn=lambda e, t, state_action: env.reward_fn(e, t, state_action),
      transition_fn=(lambda e, t, state_action:
                     env.transition_fn(e, t, state_action)))


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_native_ports_equal_the_torch_path(name):
  """The engine on MFGLib's examples uses the numba ports; on the same
  functions wrapped it calls them through torch, and the mean field, the
  rewards under it and NashConv agree to 1e-12."""
  env, engine = _environment_and_engine(name)
  torch_engine = mfglib_adapter.MFGLibEngine(through_torch(env))
  assert engine.native_reward and engine.native_transition
  assert not (torch_engine.native_reward or torch_engine.native_transition)
  assert torch_engine.static_rewards == engine.static_rewards
  assert torch_engine.static_transitions == engine.static_transitions
  table = random_table(engine, seed=7)
  ours = engine.mean_field(lambda rows: table[rows])
  theirs = torch_engine.mean_field(lambda rows: table[rows])
  for field in ("flow", "rewards", "transition_probabilities"):
    np.testing.assert_allclose(getattr(ours, field), getattr(theirs, field),
                               rtol=0, atol=1e-12, err_msg=field)
  assert engine.nash_conv(ours) == pytest.approx(
      torch_engine.nash_conv(theirs), rel=1e-12, abs=1e-12)


def test_environment_calls_per_iteration():
  """Through torch, our iterations and NashConv call r_t and P_t once each
  where they read the mean field (conservative_treasure_hunting: r_1..r_5,
  P_1..P_4); on the numba ports they call no torch function; MFGLib's
  PriorDescent and OnlineMirrorDescent steps call every r_t once and every
  P_t twice (benchmarks/mfg.py's env columns)."""
  native_env, native_engine = _environment_and_engine(
      "conservative_treasure_hunting")
  calls = []
  originals = {kind: getattr(native_env, kind)
               for kind in ("reward_fn", "transition_fn")}
  for kind, function in originals.items():
    def counted(environment, t, state_action, kind=kind, function=function):
      calls.append((kind, t))
      return function(environment, t, state_action)
    setattr(native_env, kind, counted)
  try:
    env = through_torch(native_env)
    engine = mfglib_adapter.MFGLibEngine(env)
    ours = [(kind, t) for kind, statics in (
        ("reward_fn", engine.static_rewards),
        ("transition_fn", engine.static_transitions))
            for t, static in enumerate(statics) if not static]
    assert len(ours) == 9
    for solver_engine, expected in ((engine, ours), (native_engine, [])):
      for solver in (
          mf_bayesian_q.MFBayesianQLearning(solver_engine.game,
                                            engine=solver_engine),
          mirror_descent.MirrorDescent(solver_engine.game,
                                       engine=solver_engine)):
        calls.clear()
        solver.iteration()
        assert sorted(calls) == sorted(expected)
        calls.clear()
        solver.nash_conv()
        assert not calls
    calls.clear()
    engine.nash_conv(engine.mean_field(engine.uniform_policy))
    assert sorted(calls) == sorted(ours)
    theirs = sorted([("reward_fn", t) for t in range(env.T + 1)] +
                    2 * [("transition_fn", t) for t in range(env.T)])
    for algorithm in (PriorDescent(eta=1.0, n_inner=1),
                      OnlineMirrorDescent(alpha=0.1)):
      state = algorithm.init_state(env, uniform_tensor(env))
      calls.clear()
      algorithm.step_next_state(state, atol=None, rtol=None)
      assert sorted(calls) == theirs
  finally:
    for kind, function in originals.items():
      setattr(native_env, kind, function)


def test_bad_input():
  with pytest.raises(ValueError, match="name must be one of"):
    mfglib_adapter.environment("beach")
  with pytest.raises(ValueError, match="env must be an mfglib.env"):
    mfglib_adapter.MFGLibEngine(object())
  _, engine = _environment_and_engine("beach_bar")
  with pytest.raises(ValueError, match="pi must have shape"):
    engine.policy_table(torch.ones(2, 2))
  with pytest.raises(ValueError, match="table must have shape"):
    engine.policy_tensor(np.ones((2, 2)))
  with pytest.raises(ValueError, match="needs its engine: engine="):
    mf_bayesian_q.MFBayesianQLearning(engine.game)
  _, other = _environment_and_engine("left_right")
  with pytest.raises(ValueError, match="mean_field must be made by this"):
    engine.nash_conv(other.mean_field(other.uniform_policy))
  from mfglib.env import Environment  # pylint: disable=g-import-not-at-top
  for field, value, message in (
      ("T", 1.5, "env.T must be an integer >= 0"),
      ("T", -1, "env.T must be an integer >= 0"),
      ("mu0", np.full(3, 1 / 3), "env.mu0 must be a floating-point torch"),
      ("mu0", torch.ones(4) / 4, "env.mu0 must be a floating-point torch"),
      ("mu0", torch.tensor([1, 0, 0]), "env.mu0 must be a floating-point"),
      ("S", 3, "env.S must be a non-empty tuple of positive integers"),
      ("mu0", torch.tensor([0.5, 0.5, 0.5]),
       "env.mu0 must be a probability distribution")):
    broken = Environment.left_right()
    setattr(broken, field, value)
    with pytest.raises(ValueError, match=message):
      mfglib_adapter.MFGLibEngine(broken)


def test_calls_check_their_arrays():
  """reward and transition_matrix check t and the arrays' shapes before a
  port (which does not check bounds) runs; a torch function returning the
  wrong shape is named."""
  _, engine = _environment_and_engine("beach_bar")
  pairs = engine.num_states * engine.num_actions
  for call, last in ((engine.reward, engine.horizon),
                     (engine.transition_matrix, engine.horizon - 1)):
    with pytest.raises(ValueError, match="state_action must be"):
      call(0, np.ones(2) / 2)
    with pytest.raises(ValueError, match="out must be"):
      call(0, np.full(pairs, 1 / pairs), np.empty(1))
    with pytest.raises(ValueError, match=f"t must be an integer in 0..{last}"):
      call(last + 1, np.full(pairs, 1 / pairs))
  from mfglib.env import Environment  # pylint: disable=g-import-not-at-top
  env = Environment.left_right()
  env.reward_fn = lambda e, t, state_action: torch.zeros(2, 2)
  with pytest.raises(ValueError, match=r"env.reward\(t=0, L_t\) must return"):
    mfglib_adapter.MFGLibEngine(env)


def test_example_functions_of_other_sizes():
  """An example's function built for other sizes than the environment's:
  the engine raises MFGLib's own error where MFGLib's function does, and
  where the port leaves entries unwritten it calls the function."""
  from mfglib.env import Environment  # pylint: disable=g-import-not-at-top
  from mfglib.env.examples import beach_bar  # pylint: disable=g-import-not-at-top
  env = Environment.beach_bar(n=6)
  env.reward_fn = beach_bar.RewardFn(4, 2, 1e-20)
  with pytest.raises(RuntimeError):
    env.reward(0, torch.ones(6, 3) / 18)
  with pytest.raises(RuntimeError):
    mfglib_adapter.MFGLibEngine(env)
  # A port runs only on the sizes it was built for (numba does not check
  # bounds): rock_paper_scissors' on 2 states is not used, and MFGLib's own
  # function raises its IndexError.
  env = Environment.rock_paper_scissors()
  env.S, env.mu0 = (2,), torch.tensor([1.0, 0.0])
  assert mfglib_native.native_functions(env) == (None, None)
  with pytest.raises(IndexError):
    mfglib_adapter.MFGLibEngine(env)
  # left_right's RewardFn in a 4-state environment: MFGLib's function gives
  # r = 0 at the fourth state, its port (three states) writes nothing there.
  from mfglib.env.examples import left_right  # pylint: disable=g-import-not-at-top
  four_states = Environment(
      T=1, S=(4,), A=(2,), mu0=torch.ones(4) / 4, r_max=2.0,
      reward_fn=left_right.RewardFn(),
      transition_fn=lambda e, t, state_action: torch.ones(4, 4, 2) / 4)
  engine = mfglib_adapter.MFGLibEngine(four_states)
  assert not engine.native_reward
  state_action = np.full(8, 1 / 8)
  np.testing.assert_array_equal(
      engine.reward(0, state_action),
      four_states.reward(0, torch.from_numpy(state_action.reshape(4, 2))
                         ).numpy().ravel())


def test_ports_that_disagree_are_not_used(monkeypatch):
  """A port is used only where it gives the environment's own numbers
  (here ports of another parameter set's functions stand for a faulty
  port): the engine falls back to torch and still equals MFGLib."""
  from mfglib.env import Environment  # pylint: disable=g-import-not-at-top
  env = Environment.beach_bar(n=5)
  wrong = mfglib_native.native_functions(
      Environment.beach_bar(n=5, bar_loc=0, p_still=0.1))
  monkeypatch.setattr(mfglib_native, "native_functions", lambda e: wrong)
  engine = mfglib_adapter.MFGLibEngine(env)
  assert not (engine.native_reward or engine.native_transition)
  table = random_table(engine, seed=8)
  assert engine.nash_conv(engine.mean_field(lambda rows: table[rows])) == (
      pytest.approx(exploitability_score(env, engine.policy_tensor(table)),
                    rel=1e-10, abs=1e-12))
