kubectl_etcd::plugin_main!("kubectl-etcd-restore", kubectl_etcd_restore);
