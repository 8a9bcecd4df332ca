"""``zoo data doctor``: mislabelled images, near-duplicates and train/test leaks, and outliers, found from a
pretrained backbone's features (see zoo.doctor.core)."""

from zoo.doctor.core import DEFAULT_MODELS, DoctorConfig, DoctorResult, analyse, doctor

__all__ = ["DEFAULT_MODELS", "DoctorConfig", "DoctorResult", "analyse", "doctor"]
