"""Placement as a pipeline: feasibility filters, then scorers, then sequential greedy choice."""

from cockpit.core.constraints import check_constraint, parse_amount, parse_constraint, parse_constraints
from cockpit.core.placement.greedy import place
from cockpit.core.placement.plan import Plan
from cockpit.core.placement.request import STRATEGIES, Request
from cockpit.core.placement.scorers import SCORER_HELP, check_weights, parse_weights
from cockpit.core.placement.table import MIB, MILLI, HostTable, cpu_units, mem_units

__all__ = [
    "HostTable",
    "MIB",
    "MILLI",
    "Plan",
    "Request",
    "SCORER_HELP",
    "STRATEGIES",
    "check_constraint",
    "parse_constraint",
    "parse_constraints",
    "parse_weights",
    "check_weights",
    "cpu_units",
    "mem_units",
    "parse_amount",
    "place",
]
