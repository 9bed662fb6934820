kubectl_etcd::plugin_main!("kubectl-etcd-doctor", kubectl_etcd_doctor);
