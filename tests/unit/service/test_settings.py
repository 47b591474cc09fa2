"""A worker's settings: the model configuration's value, its FEATUREVIZ_* variable first, each
declared by the service or by the operation it belongs to."""
import pytest

from featureviz.service.operations import OPERATIONS
from featureviz.service.settings import CACHE_DIR, CACHE_MAX_MB, Settings


def test_the_variable_wins_over_the_configuration_which_wins_over_the_default():
    assert Settings({}, environ={})[CACHE_MAX_MB] == 1024
    assert Settings({"cache_max_mb": 0}, environ={})[CACHE_MAX_MB] == 0  # 0 is a value: the cache off
    assert Settings({"cache_max_mb": 0}, environ={"FEATUREVIZ_CACHE_MAX_MB": "12.5"})[CACHE_MAX_MB] == 12.5
    assert Settings({"cache_max_mb": 7}, environ={"FEATUREVIZ_CACHE_MAX_MB": ""})[CACHE_MAX_MB] == 7
    assert Settings({"cache_dir": "/srv/cache"}, environ={})[CACHE_DIR] == "/srv/cache"
    assert Settings({}, environ={})[CACHE_DIR].endswith("/.cache/featureviz")


@pytest.mark.parametrize("raw", ["-1", "lots", "nan"])
def test_a_bad_value_is_refused_naming_the_setting_its_variable_and_what_it_takes(raw):
    with pytest.raises(ValueError, match=r"cache_max_mb \(or FEATUREVIZ_CACHE_MAX_MB\) must be a number of MB >= 0"):
        Settings({}, environ={"FEATUREVIZ_CACHE_MAX_MB": raw})[CACHE_MAX_MB]


def test_each_setting_belongs_to_one_operation_and_has_its_variable():
    owners = {}
    for name, operation in OPERATIONS.items():
        for setting in operation.settings:
            owners.setdefault(setting.name, []).append(name)
            assert setting.variable == f"FEATUREVIZ_{setting.name.upper()}"
    assert owners == {name: ["visualize"] for name in
                      ("precision", "batch_images", "group_size", "max_filters", "max_filters_work")}
