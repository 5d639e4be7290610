// nft_tables: prints the name of every nftables table of the inet family in
// the current network namespace, one per line (tests check that ckpt's
// network lock leaves nothing behind; the nft command is not installed).
#include <libmnl/libmnl.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

namespace {

int OnTable(const nlmsghdr* h, void*) {
  nftnl_table* t = nftnl_table_alloc();
  if (t && nftnl_table_nlmsg_parse(h, t) == 0)
    printf("%s\n", nftnl_table_get_str(t, NFTNL_TABLE_NAME));
  if (t) nftnl_table_free(t);
  return MNL_CB_OK;
}

}  // namespace

int main() {
  mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    perror("nft_tables: netlink");
    return 1;
  }
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  uint32_t seq = 1;
  nlmsghdr* h =
      nftnl_table_nlmsg_build_hdr(buf.data(), NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_DUMP, seq);
  if (mnl_socket_sendto(nl, h, h->nlmsg_len) < 0) {
    perror("nft_tables: send");
    return 1;
  }
  uint32_t port = mnl_socket_get_portid(nl);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n <= 0) break;
    int r = mnl_cb_run(buf.data(), size_t(n), seq, port, OnTable, nullptr);
    if (r <= MNL_CB_STOP) {
      if (r < 0) {
        perror("nft_tables: receive");
        return 1;
      }
      break;
    }
  }
  mnl_socket_close(nl);
  return 0;
}
