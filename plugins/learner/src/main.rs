kubectl_etcd::plugin_main!("kubectl-etcd-learner", kubectl_etcd_learner);
