"""Writes breast_cancer.csv, the example dataset file: scikit-learn's copy of the Wisconsin
Diagnostic Breast Cancer data (UCI; `sklearn.datasets.load_breast_cancer`), 569 rows, 30 numeric
features and the class in a column named `diagnosis` (0 malignant, 1 benign, as scikit-learn
codes it).

    python experiments/examples/make_csv.py
"""

from pathlib import Path

from sklearn.datasets import load_breast_cancer

if __name__ == "__main__":
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "diagnosis"})
    out = Path(__file__).with_name("breast_cancer.csv")
    frame.to_csv(out, index=False, float_format="%.6g")
    print(f"wrote {out}: {len(frame)} rows, {frame.shape[1] - 1} features, target column 'diagnosis'")
