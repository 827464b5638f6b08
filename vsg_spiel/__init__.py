"""vsg_spiel: Variational Stochastic Games (Zhao & Zhang, arXiv 2503.06037)
for OpenSpiel.

Importing the package registers its games with pyspiel (and OpenSpiel's own
Python games), so `pyspiel.load_game("python_vsg_routing")` works afterwards.
"""

# pylint: disable=g-importing-member
import open_spiel.python.games  # noqa: F401  (registers python_* games)

from vsg_spiel import games  # noqa: F401  (registers the package's games)
from vsg_spiel.exploitability import best_response_values
from vsg_spiel.exploitability import deviation_gains
from vsg_spiel.exploitability import epsilon_bound
from vsg_spiel.exploitability import nash_conv
from vsg_spiel.exploitability import one_shot_deviation_gains
from vsg_spiel.exploitability import policy_values
from vsg_spiel.exploitability import profile_deviation_gains
from vsg_spiel.core import markov_game
from vsg_spiel.core import MarkovGame
from vsg_spiel.core import NonMarkovObservationError
from vsg_spiel.profiles import from_policy
from vsg_spiel.profiles import MarkovPolicy
from vsg_spiel.profiles import NonMarkovPolicyError
from vsg_spiel.profiles import pure_profile
from vsg_spiel.profiles import random_profile
from vsg_spiel.profiles import read_policy
from vsg_spiel.profiles import to_policy
from vsg_spiel.profiles import uniform_profile
from vsg_spiel.profiles import validate_profile

__version__ = "0.1.0"
