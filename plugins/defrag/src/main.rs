kubectl_etcd::plugin_main!("kubectl-etcd-defrag", kubectl_etcd_defrag);
