kubectl_etcd::plugin_main!("kubectl-etcd-health", kubectl_etcd_health);
