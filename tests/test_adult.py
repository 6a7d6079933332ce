import math
import zipfile

import pytest
import torch

from selfsup.config.schema import DataConfig
from selfsup.data import DATASETS, DatasetNotFound
from selfsup.data.adult import MEMBER

HEADER = ("age,workclass,fnlwgt,education,education-num,marital-status,occupation,relationship,race,sex,"
          "capital-gain,capital-loss,hours-per-week,native-country,income-per-year")
ROWS = [
    "39,State-gov,77516,Bachelors,13,Never-married,Adm-clerical,Not-in-family,White,Male,2174,0,40,United-States,<=50K",
    "50,Self-emp-not-inc,83311,Bachelors,13,Married-civ-spouse,Exec-managerial,Husband,White,Male,0,0,13,United-States,<=50K",
    "38,Private,215646,HS-grad,9,Divorced,Handlers-cleaners,Not-in-family,White,Male,0,0,40,United-States,<=50K",
    "53,Private,234721,11th,7,Married-civ-spouse,Handlers-cleaners,Husband,Black,Male,0,0,40,United-States,<=50K",
    "28,Private,338409,Bachelors,13,Married-civ-spouse,Prof-specialty,Wife,Black,Female,0,0,40,Cuba,<=50K",
    "37,Private,284582,Masters,14,Married-civ-spouse,Exec-managerial,Wife,White,Female,0,0,40,United-States,<=50K",
    "52,Self-emp-inc,287927,HS-grad,9,Married-civ-spouse,Exec-managerial,Wife,White,Female,15024,0,40,United-States,>50K",
    "31,Private,45781,Masters,14,Never-married,Prof-specialty,Not-in-family,White,Female,14084,0,50,United-States,>50K",
    "42,Private,159449,Bachelors,13,Married-civ-spouse,Exec-managerial,Husband,White,Male,5178,0,40,United-States,>50K",
    "30,?,180374,HS-grad,9,Married-civ-spouse,?,Wife,White,Female,0,0,40,?,>50K",
]


def write_wheel(folder, rows=ROWS, name="fairness-0.1.8-py3-none-any.whl"):
    with zipfile.ZipFile(folder / name, "w") as wheel:
        wheel.writestr(MEMBER, "\n".join([HEADER, *rows]) + "\n")
        wheel.writestr("fairness/__init__.py", "")
    return folder / name


@pytest.fixture
def no_cache(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SELFSUP_DATA", raising=False)
    return home


def build(**kwargs):
    return DATASETS.get("adult").build(DataConfig(name="adult", test_fraction=0.2, **kwargs), 0)


def test_reads_the_csv_inside_the_wheel_and_encodes_it(tmp_path, no_cache):
    write_wheel(tmp_path)
    raw = build(root=str(tmp_path))
    assert raw.kind == "tabular" and raw.num_classes == 2 and raw.class_names == ["<=50K", ">50K"]
    assert len(raw.train) + len(raw.test) == len(ROWS)
    x = torch.cat([raw.train.load(torch.arange(len(raw.train))), raw.test.load(torch.arange(len(raw.test)))])
    y = torch.cat([raw.train.labels, raw.test.labels])
    names = raw.info["feature_names"]
    assert x.shape == (len(ROWS), len(names)) and x.dtype == torch.float32
    assert sorted(y.tolist()) == [0] * 6 + [1] * 4
    # each row: one category per field, sex in its own column, matching targets["sex"]
    sex = names.index("sex=Male")
    assert raw.info["sensitive_column"] == sex and raw.info["sensitive"] == "sex"
    sexes = torch.cat([raw.train.targets["sex"], raw.test.targets["sex"]])
    torch.testing.assert_close(x[:, sex], sexes)
    assert sorted(sexes.tolist()) == [0.0] * 5 + [1.0] * 5
    for a, b in raw.info["feature_groups"]:
        if b - a > 1:
            torch.testing.assert_close(x[:, a:b].sum(1), torch.ones(len(ROWS)))
    assert "education=Bachelors" not in names and "workclass=?" in names and "native-country=Cuba" in names
    groups = raw.info["feature_groups"]
    assert groups[0][0] == 0 and groups[-1][1] == len(names)
    assert all(p[1] == q[0] for p, q in zip(groups, groups[1:]))
    # log-scaled heavy-tailed numbers, the rest as they are
    ages, gains = x[:, names.index("age")], x[:, names.index("capital-gain")]
    assert set(ages.tolist()) == {39.0, 50, 38, 53, 28, 37, 52, 31, 42, 30}
    assert gains.max().item() == pytest.approx(math.log1p(15024), rel=1e-6)


def test_reads_an_extracted_csv_from_selfsup_data(tmp_path, no_cache, monkeypatch):
    (tmp_path / "adult.csv").write_text("\n".join([HEADER, *ROWS]) + "\n")
    monkeypatch.setenv("SELFSUP_DATA", str(tmp_path))
    assert len(build().train) == 8


def test_finds_the_wheel_in_the_cache_folder(no_cache):
    cache = no_cache / ".cache" / "selfsup"
    cache.mkdir(parents=True)
    write_wheel(cache)
    assert len(build().test) == 2


def test_missing_data_says_how_to_get_it(tmp_path, no_cache):
    with pytest.raises(DatasetNotFound, match="pip download --no-deps fairness==0.1.8"):
        build(root=str(tmp_path))


def test_corrupt_wheel_and_wrong_columns_are_named(tmp_path, no_cache):
    (tmp_path / "fairness-0.1.8-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="fairness-0.1.8-py3-none-any.whl"):
        build(root=str(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    (other / "adult.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="columns"):
        build(root=str(other))
