"""Which function places each DIOR category, and in which order categories are placed."""

from __future__ import annotations

from collections.abc import Callable

from rsvg.synth.place_grounds import (
    place_baseballfield,
    place_basketballcourt,
    place_golffield,
    place_groundtrackfield,
    place_stadium,
    place_tenniscourt,
)
from rsvg.synth.place_infra import (
    place_airport,
    place_bridge,
    place_dam,
    place_harbor,
    place_overpass,
    place_service_area,
    place_toll_station,
    place_trainstation,
)
from rsvg.synth.place_small import (
    place_airplane,
    place_chimney,
    place_ship,
    place_storagetank,
    place_vehicle,
    place_windmill,
)
from rsvg.synth.placement import Placer
from rsvg.synth.world import World

PLACERS: dict[str, Callable[[World, Placer], bool]] = {
    "airplane": place_airplane,
    "airport": place_airport,
    "baseballfield": place_baseballfield,
    "basketballcourt": place_basketballcourt,
    "bridge": place_bridge,
    "chimney": place_chimney,
    "dam": place_dam,
    "Expressway-Service-area": place_service_area,
    "Expressway-toll-station": place_toll_station,
    "golffield": place_golffield,
    "groundtrackfield": place_groundtrackfield,
    "harbor": place_harbor,
    "overpass": place_overpass,
    "ship": place_ship,
    "stadium": place_stadium,
    "storagetank": place_storagetank,
    "tenniscourt": place_tenniscourt,
    "trainstation": place_trainstation,
    "vehicle": place_vehicle,
    "windmill": place_windmill,
}

# Placement order: objects that define sites for others (spans, facilities) first, small objects last.
PRIORITY: tuple[str, ...] = (
    "dam",
    "bridge",
    "overpass",
    "airport",
    "harbor",
    "trainstation",
    "Expressway-Service-area",
    "Expressway-toll-station",
    "golffield",
    "stadium",
    "groundtrackfield",
    "baseballfield",
    "tenniscourt",
    "basketballcourt",
    "storagetank",
    "chimney",
    "windmill",
    "airplane",
    "ship",
    "vehicle",
)
