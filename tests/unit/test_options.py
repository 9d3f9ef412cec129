"""The options value: text or JSON in, one clear message per bad field, a schema to build forms."""

import pytest

from video2mp3.domain.options import ConversionOptions, describe, tag_text
from video2mp3.errors import InvalidRequest


def test_text_values_are_parsed() -> None:
    options = ConversionOptions.parse(
        {
            "start": "1:02:03.5",
            "end": "3730",
            "channels": "1",
            "track": " FRE ",
            "chapters": "false",
        }
    )
    assert (options.start, options.end, options.channels) == (3723.5, 3730, 1)
    assert (options.track, options.chapters) == ("fre", False)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"track": "zz"}, "track: 'zz' is not an ISO 639 language code"),
        ({"track": "english"}, "track:"),
        ({"bitrate": "100"}, "bitrate: must be one of 32"),
        ({"normalize": "-40"}, "normalize:"),
        ({"cover": "poster"}, "cover:"),
        ({"start": "1:75"}, "start:"),
        ({"start": "10", "end": "5"}, "end must come after start"),
        ({"quality": "2", "bitrate": "128"}, "not both"),
        ({"speed": "2"}, "speed: unknown option"),
    ],
)
def test_a_bad_option_is_named(values: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        ConversionOptions.parse(values)
    assert field in caught.value.message


def test_tag_text_is_printable_and_bounded() -> None:
    assert tag_text("Line\nbreak\u200b and\ttab ") == "Linebreak andtab"
    assert tag_text("\n\t") is None
    assert len(tag_text("x" * 500) or "") == 200


def test_the_schema_has_what_a_form_needs() -> None:
    fields = describe()["properties"]
    assert set(fields) >= {"quality", "bitrate", "channels", "sample_rate", "start", "end"}
    assert all(field.get("description") for field in fields.values())
    bitrate = fields["bitrate"]["anyOf"][0]
    assert bitrate["type"] == "integer"
    assert 320 in bitrate["enum"]
    assert fields["quality"]["anyOf"][0]["maximum"] == 9
    assert fields["cover"]["anyOf"][0]["enum"] == ["frame", "source", "none"]
    assert fields["chapters"] == {**fields["chapters"], "type": "boolean", "default": True}
