"""The catalog: loading (Kaggle layout, CSV, folders, Fashion-MNIST), image files, splits,
the study sample and the exploration tables (notebooks 01 and 02)."""
