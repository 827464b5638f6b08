"""vsg_spiel.mfglib_native's ports against MFGLib's own reward and transition.

Skipped when the peer libraries (mfglib, torch) are not installed. MFGLib
runs in float64 (torch's default dtype is switched per test): the ports must
give its r_t and P_t to within 1e-12 (atol, rtol 0; the ports sum in another
order than PyTorch's reductions, so the last bits may differ), at every t and
for several L_t. One test runs MFGLib in float32 (atol 1e-5).
"""

import math

import numpy as np
import pytest

_INSTALL = ("pip install -e '.[peers]' && pip install --no-deps "
            "mfglib==0.3.0 (README, 'Peer libraries')")
torch = pytest.importorskip(
    "torch", reason=f"peer library torch not installed: {_INSTALL}")
pytest.importorskip(
    "mfglib", reason=f"peer library mfglib not installed: {_INSTALL}")

# pylint: disable=g-import-not-at-top,wrong-import-position
from mfglib.env import Environment
from mfglib.env.examples import beach_bar

from vsg_spiel.mfglib_native import native_functions

ATOL = 1e-12
ATOL_FLOAT32 = 1e-5
# Each environment at its defaults and at one other parameter set.
# linear_quadratic's defaults make MFGLib's transition take ~50 ms a call.
CASES = [
    ("beach_bar", {}),
    ("beach_bar", dict(T=3, n=6, bar_loc=3, log_eps=1e-12, p_still=0.3)),
    ("building_evacuation", {}),
    ("building_evacuation", dict(T=2, n_floor=2, floor_l=3, floor_w=4,
                                 log_eps=1e-8, eta=0.5, evac_r=3.0)),
    ("conservative_treasure_hunting", {}),
    ("conservative_treasure_hunting", dict(T=3, n=4, r=(1.0, 2.0, 0.5, 3.0),
                                           c=(0.5, 2.0, 1.5))),
    ("crowd_motion", {}),
    ("crowd_motion", dict(T=4, torus_l=6, torus_w=7, loc_change_freq=1,
                          c=3.0, log_eps=1e-6, p_still=0.2, seed=3)),
    ("equilibrium_price", {}),
    ("equilibrium_price", dict(T=3, s_inv=2, Q=1, H=1, d=2.0, e0=0.5,
                               sigma=2.0, c=(0.3, 0.2, 0.1, 0.4, 0.5))),
    ("left_right", {}),
    ("left_right", dict(mu0=(0.2, 0.5, 0.3))),
    ("linear_quadratic", {}),
    ("linear_quadratic", dict(T=2, el=3, m=2, sigma=1.5, delta=0.2, k=0.5,
                              q=0.05, kappa=0.8, c_term=2.0)),
    ("random_linear", {}),
    ("random_linear", dict(T=2, n=4, m=2.0, seed=5)),
    ("rock_paper_scissors", {}),
    ("rock_paper_scissors", dict(T=3, mu0=(0.1, 0.2, 0.3, 0.4))),
    ("susceptible_infected", {}),
    ("susceptible_infected", dict(T=5, mu0=(0.7, 0.3))),
]


@pytest.fixture(autouse=True)
def float64_torch():
  default = torch.get_default_dtype()
  torch.set_default_dtype(torch.float64)
  yield
  torch.set_default_dtype(default)


def mean_fields(env, seed=0):
  """L_t as (|S| |A|,) float64: uniform, random positive, concentrated on
  the middle pair, random on the odd states only (zero mass elsewhere)."""
  num_states, num_actions = math.prod(env.S), math.prod(env.A)
  size = num_states * num_actions
  rng = np.random.default_rng(seed)
  concentrated = np.zeros(size)
  concentrated[size // 2] = 1.0
  odd = rng.uniform(0.05, 1.0, (num_states, num_actions))
  odd[::2] = 0.0
  fields = [np.full(size, 1.0 / size), rng.uniform(0.05, 1.0, size),
            concentrated, odd.reshape(-1)]
  return [field / field.sum() for field in fields]


def compare(env, atol, dtype=np.float64):
  """Native ports against env.reward / env.prob at every t and L_t."""
  reward, transition = native_functions(env)
  assert reward is not None and transition is not None
  num_states = math.prod(env.S)
  for field in mean_fields(env):
    field = field.astype(dtype).astype(np.float64)
    argument = torch.from_numpy(field.astype(dtype).reshape(env.S + env.A))
    for t in range(env.T + 1):
      out = np.full(len(field), np.nan)
      assert reward(t, field, out) is out
      np.testing.assert_allclose(
          out, env.reward(t, argument).numpy().reshape(-1),
          rtol=0, atol=atol, err_msg=f"reward, t={t}")
      out = np.full((len(field), num_states), np.nan)
      assert transition(t, field, out) is out
      np.testing.assert_allclose(
          out, env.prob(t, argument).numpy().reshape(num_states, -1).T,
          rtol=0, atol=atol, err_msg=f"transition, t={t}")


@pytest.mark.parametrize(
    "name,params", CASES,
    ids=[f"{name}-{'default' if not params else 'other'}"
         for name, params in CASES])
def test_matches_mfglib(name, params):
  compare(getattr(Environment, name)(**params), ATOL)


@pytest.mark.parametrize("name,params", [
    ("beach_bar", {}), ("random_linear", dict(n=4, seed=2))])
def test_matches_mfglib_float32(name, params):
  torch.set_default_dtype(torch.float32)  # The fixture restores it.
  env = getattr(Environment, name)(**params)
  compare(env, ATOL_FLOAT32, np.float32)


def test_unrecognised_functions_stay_on_torch():
  env = Environment.beach_bar()

  class RewardFn(beach_bar.RewardFn):  # Same name, another module.
    pass

  class TransitionFn(beach_bar.TransitionFn):
    pass

  def reward_fn(env, t, state_action):
    del env, t
    return state_action

  original = env.reward_fn
  env.reward_fn = RewardFn(4, 2, 1e-20)
  env.transition_fn = TransitionFn(4, 0.5)
  assert native_functions(env) == (None, None)
  env.reward_fn = reward_fn
  env.transition_fn = lambda env, t, state_action: None
  assert native_functions(env) == (None, None)
  env.reward_fn = original
  reward, transition = native_functions(env)
  assert callable(reward) and transition is None


def test_parameters_given_as_tensors():
  """0-d tensor parameters (MFGLib's constructors accept them) are read as
  numbers."""
  compare(Environment.linear_quadratic(
      T=2, el=2, m=1, sigma=torch.tensor(1.5), delta=torch.tensor(0.2),
      k=torch.tensor(0.5), kappa=torch.tensor(0.8),
      c_term=torch.tensor(2.0)), ATOL)
  compare(Environment.beach_bar(log_eps=torch.tensor(1e-9)), ATOL)


@pytest.mark.parametrize("name", ["beach_bar", "crowd_motion",
                                  "building_evacuation"])
def test_float32_parameters_round_as_in_mfglib(name):
  """A float32 environment's log_eps of 1e-50 is 0 in MFGLib's arithmetic:
  r is infinite where a state has no mass, in the port as in MFGLib (a
  float64 1e-50 would give finite rewards there)."""
  torch.set_default_dtype(torch.float32)  # The fixture restores it.
  env = getattr(Environment, name)(log_eps=1e-50)
  reward, _ = native_functions(env)
  num_states = math.prod(env.S)
  field = mean_fields(env)[3]  # no mass on the even states
  argument = torch.from_numpy(field.astype(np.float32).reshape(env.S + env.A))
  ours = reward(0, field, np.full(len(field), np.nan))
  theirs = env.reward(0, argument).numpy().reshape(-1).astype(np.float64)
  assert np.isinf(theirs).sum() >= num_states // 2
  np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
  finite = np.isfinite(theirs)
  np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5)
