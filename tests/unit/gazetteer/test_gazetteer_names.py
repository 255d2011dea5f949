from shared.gazetteer import name_key, plain_name


def test_plain_name_ignores_case_accents_and_punctuation():
    assert plain_name("St. John's Wood  Road") == "st johns wood road"
    assert plain_name("Richard-Wagner-Straße") == "richard wagner strasse"
    assert plain_name("Café  Row") == "cafe row"


def test_name_key_treats_abbreviations_as_the_full_word():
    assert name_key("Agar Grove") == name_key("AGAR GR") == "agar gr"
    assert name_key("Kings Cross Rd") == name_key("King's Cross Road")
    assert name_key("Saint Pancras Way") == name_key("St Pancras Way")


def test_different_names_stay_different():
    assert name_key("Agar Grove") != name_key("Agar Place")
