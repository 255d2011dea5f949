"""Reading OSM and GeoJSON: which ways are streets, merging by name and distance, addresses."""

import json

import pytest

from shared.gazetteer import build_gazetteer

# Along latitude 51.5, 0.001 degrees of longitude is ~69 m.
NODES = {1: 0.000, 2: 0.001, 3: 0.002, 4: 0.003, 5: 0.020, 6: 0.021}


def way(wid, refs, **tags):
    nds = "".join(f'<nd ref="{r}"/>' for r in refs)
    tgs = "".join(f'<tag k="{k.replace("_", ":")}" v="{v}"/>' for k, v in tags.items())
    return f'<way id="{wid}" version="1">{nds}{tgs}</way>'


def osm_xml(*ways, extra_nodes=""):
    nodes = "".join(f'<node id="{n}" version="1" lat="51.5" lon="{lon}"/>' for n, lon in NODES.items())
    return f'<?xml version="1.0"?><osm version="0.6">{nodes}{extra_nodes}{"".join(ways)}</osm>'


@pytest.fixture
def toy(tmp_path):
    address = (
        '<node id="10" version="1" lat="51.5001" lon="0.0005">'
        '<tag k="addr:housenumber" v="1"/><tag k="addr:street" v="High St"/></node>'
        '<node id="11" version="1" lat="51.5001" lon="0.0205">'
        '<tag k="addr:housenumber" v="2"/></node>'
    )
    path = tmp_path / "toy.osm"
    path.write_text(
        osm_xml(
            way(101, [1, 2], highway="residential", name="High Street"),
            way(102, [2, 3], highway="primary", name="High Street"),  # touches 101: same street
            way(103, [5, 6], highway="residential", name="High Street"),  # 1.2 km away: another
            way(104, [3, 4], highway="motorway", name="Fast Way"),
            way(105, [3, 4], highway="footway", name="Church Path"),
            way(106, [3, 4], highway="residential"),  # unnamed
            way(107, [1, 2], highway="proposed", name="Future Road"),
            extra_nodes=address,
        )
    )
    return build_gazetteer(path)


def test_street_types_and_unnamed_ways(toy):
    gazetteer, _ = toy
    assert sorted(s.name for s in gazetteer.streets.values()) == ["Church Path", "High Street", "High Street"]


def test_same_name_merges_when_touching_and_splits_when_far(toy):
    gazetteer, report = toy
    highs = sorted(
        (s for s in gazetteer.streets.values() if s.name == "High Street"), key=lambda s: s.segment_ids
    )
    assert [h.segment_ids for h in highs] == [("way/101", "way/102"), ("way/103",)]
    assert highs[0].address_count == 1  # "High St" matches the nearer High Street
    assert highs[1].address_count == 1  # no addr:street: the nearest street within 50 m
    assert report.addresses["counted"] == 2 and report.segments == 4


def test_geojson_streets_import(tmp_path):
    features = [
        {
            "type": "Feature",
            "properties": {"name": "Mill Lane", "id": "a1"},
            "geometry": {"type": "LineString", "coordinates": [[-1.0, 52.0], [-1.001, 52.0]]},
        },
        {
            "type": "Feature",
            "properties": {"name": "Mill Ln"},
            "geometry": {"type": "LineString", "coordinates": [[-1.001, 52.0], [-1.002, 52.0]]},
        },
        {
            "type": "Feature",
            "properties": {"addr:housenumber": "3", "addr:street": "Mill Lane"},
            "geometry": {"type": "Point", "coordinates": [-1.0015, 52.0001]},
        },
    ]
    path = tmp_path / "streets.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    gazetteer, _ = build_gazetteer(path)
    [mill] = gazetteer.streets.values()
    assert mill.segment_ids == ("a1", "feature/1") and mill.address_count == 1


def test_an_extract_without_named_streets_is_an_error(tmp_path):
    path = tmp_path / "empty.osm"
    path.write_text(osm_xml(way(1, [1, 2], highway="residential")))
    with pytest.raises(ValueError, match="no named streets"):
        build_gazetteer(path)
