//! Tests live in `tests/`; they need the local cluster (`e2e/cluster/up`) and its KUBECONFIG.
