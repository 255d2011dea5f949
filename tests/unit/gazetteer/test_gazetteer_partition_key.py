"""What a street's anonymised signals are partitioned by: every place area's signals share one
partition, while the records stay keyed by street."""

from aiokafka.partitioner import DefaultPartitioner
from shapely.geometry import LineString

from services.aggregator.areas import Areas
from services.aggregator.disclosure import DisclosurePolicy
from shared.gazetteer import Gazetteer, Street, name_key
from shared.kafka import partitioned_by
from shared.privacy import MIN_STREET_ADDRESSES

PARTITIONS = list(range(6))


def test_every_camden_place_area_has_one_partition_key(camden_gazetteer):
    areas = Areas(camden_gazetteer, DisclosurePolicy())
    by_area: dict[str, set[str]] = {}
    for street_id, area in areas.place_area_of.items():
        by_area.setdefault(area.area_id, set()).add(camden_gazetteer.partition_key(street_id))
    assert len(by_area) > 100  # Camden's streets publish in hundreds of areas
    assert all(len(keys) == 1 for keys in by_area.values()), "an area's signals would span partitions"
    # The key is the street's place unit: areas merged into one unit share it.
    merged = [a for a in by_area if a in {u.id for u in camden_gazetteer.units}]
    assert merged, "Camden has streets too small to publish alone"
    assert all(by_area[a] == {a} for a in merged)


def test_a_street_in_a_place_unit_is_partitioned_by_the_unit_and_one_in_none_by_itself(camden_gazetteer):
    street_id = next(iter(camden_gazetteer.streets))
    unit = camden_gazetteer.unit_of(street_id, MIN_STREET_ADDRESSES)
    assert camden_gazetteer.partition_key(street_id) == unit.id != street_id

    line = LineString([(-0.14, 51.54), (-0.13, 51.54)])
    alone = Street("s-alone", "Alone Street", name_key("Alone Street"), line, ("way/1",), 3)
    bare = Gazetteer(streets={alone.id: alone})  # no units built: nothing to group by
    assert bare.partition_key("s-alone") == "s-alone"
    assert bare.partition_key("s-unknown") == "s-unknown"


def test_the_partitioner_places_a_units_streets_where_kafka_places_the_unit(camden_gazetteer):
    partition = partitioned_by(camden_gazetteer.partition_key)
    units = [u for u in camden_gazetteer.units_for(MIN_STREET_ADDRESSES) if len(u.street_ids) > 1]
    assert len(units) > 20
    for unit in units:
        expected = DefaultPartitioner()(unit.id.encode(), PARTITIONS, PARTITIONS)
        assert {partition(s.encode(), PARTITIONS, PARTITIONS) for s in unit.street_ids} == {expected}
    # The units spread over every partition, as keys do.
    assert {partition(u.street_ids[0].encode(), PARTITIONS, PARTITIONS) for u in units} == set(PARTITIONS)
    assert partition(None, PARTITIONS, [2]) == 2  # no key: any available partition, as by default
