//! esup-runner-operator's controller. For now: the CRD generation that `crdgen` exposes.

pub mod crdgen;
