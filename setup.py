"""vsg_spiel: Variational Stochastic Games as an OpenSpiel plugin collection.

One distribution, one import name. The top-level `games/`, `algorithms/` and
`eval/` folders are installed as `vsg_spiel.games`, `vsg_spiel.algorithms` and
`vsg_spiel.eval` through `package_dir`; they are never top-level packages.
"""

import setuptools

setuptools.setup(
    name="vsg_spiel",
    version="0.1.0",
    description=("Variational Stochastic Games (Zhao & Zhang, arXiv 2503.06037) "
                 "as OpenSpiel games and solvers"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=[
        "vsg_spiel",
        "vsg_spiel.games",
        "vsg_spiel.algorithms",
        "vsg_spiel.eval",
    ],
    package_dir={
        "vsg_spiel": "vsg_spiel",
        "vsg_spiel.games": "games",
        "vsg_spiel.algorithms": "algorithms",
        "vsg_spiel.eval": "eval",
    },
    # Lower bounds are the versions the test suite has been run with.
    install_requires=[
        "open_spiel>=2.0.2",
        "numpy>=2.4",
        # Sparse transition matrices of the Markov-game core, the convex
        # equilibrium problem of the routing game and linear programs.
        "scipy>=1.17",
        "tensorflow>=2.21",
        "absl-py>=2.5",
        "matplotlib>=3.11",
        # OpenSpiel's own baselines that the eval binaries run import these
        # without declaring them: JPSRO and correlated Q-learning need cvxpy with
        # the ECOS solver,
        # Nash-Q and matrix_nash need nashpy.
        "cvxpy>=1.9",
        "ecos>=2.0",
        "nashpy>=0.0.43",
    ],
    extras_require={
        # The report's --backend=ray runs its cells on a Ray cluster.
        "ray": ["ray>=2.60"],
        # Peer libraries that tests and benchmarks compare against: Gambit's
        # logit QRE is the reference of the homotopy solver.
        "peers": ["pygambit>=16.7"],
        "test": ["pytest>=9.0", "hypothesis>=6.150", "ray>=2.60"],
    },
    entry_points={
        "console_scripts": ["vsg-report=vsg_spiel.eval.report:run_main"],
    },
)
