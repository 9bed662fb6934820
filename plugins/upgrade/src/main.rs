kubectl_etcd::plugin_main!("kubectl-etcd-upgrade", kubectl_etcd_upgrade);
