"""Street gazetteer: OSM streets, addresses per street, wards, snapping and publication units."""

from .build import DEFAULT_THRESHOLDS, ImportReport, build_gazetteer
from .geo import Projector, choose_crs
from .model import Gazetteer, Street, Unit, Ward
from .names import name_key, plain_name
from .snapping import DEFAULT_MAX_DISTANCE_M, Snapper, TooFarFromStreet
from .units import PERSON_MIN_ADDRESSES, PLACE_MIN_ADDRESSES, build_units

__all__ = [
    "DEFAULT_MAX_DISTANCE_M",
    "DEFAULT_THRESHOLDS",
    "PERSON_MIN_ADDRESSES",
    "PLACE_MIN_ADDRESSES",
    "Gazetteer",
    "ImportReport",
    "Projector",
    "Snapper",
    "Street",
    "TooFarFromStreet",
    "Unit",
    "Ward",
    "build_gazetteer",
    "build_units",
    "choose_crs",
    "name_key",
    "plain_name",
]
