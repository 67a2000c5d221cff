// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title ReceivableFinancing
/// @notice Supply-chain receivables on a shared chain: a core enterprise (debtor) records what it
///         owes once, the holder applies for financing, the bank (admin) approves and funds, the
///         debtor repays, and anyone may mark it defaulted once overdue. Receivables circulate
///         (transfer, split) to lower-tier suppliers with the chain of title kept on chain.
///         Applications within the debtor's limit and terms are approved by the contract itself.
/// @dev Amounts are integer minor units (fen/cents); money moves off chain, the chain records it.
contract ReceivableFinancing {
    enum State {
        None,
        Created,
        FinancingRequested,
        Approved,
        Rejected,
        Financed,
        Repaid,
        Defaulted
    }

    struct Receivable {
        address debtor;
        uint64 dueDate;
        uint64 createdAt;
        State state;
        address holder;
        uint64 fundedAt;
        address financier;
        uint256 amount;
        uint256 advance;
        uint256 discount;
        bytes32 documentHash;
        uint256 parentId;
    }

    /// @dev Per-debtor financing limit and terms, set by the bank.
    struct Terms {
        uint256 limit;
        uint256 used;
        uint32 maxTenor;
        uint16 advanceBps;
        uint16 discountBpsPerYear;
        bool active;
    }

    uint16 private constant BPS = 10_000;
    uint256 private constant YEAR = 365 days;

    address public immutable bank;
    uint256 public receivableCount;
    mapping(address account => string) public enterpriseName;
    mapping(address account => bool) public isEnterprise;
    mapping(address debtor => Terms) public terms;
    mapping(bytes32 documentHash => uint256 id) public receivableOfDocument;
    mapping(uint256 id => Receivable) private _receivables;
    mapping(uint256 id => address[]) private _titles;
    mapping(uint256 id => uint256[]) private _children;

    event EnterpriseRegistered(address indexed account, string name);
    event LimitSet(address indexed debtor, uint256 limit, uint32 maxTenor, uint16 advanceBps, uint16 discountBpsPerYear);
    event ReceivableCreated(uint256 indexed id, address indexed debtor, address indexed creditor, uint256 amount, uint64 dueDate, bytes32 documentHash);
    event Transferred(uint256 indexed id, address indexed from, address indexed to);
    event Split(uint256 indexed parentId, uint256 indexed childId, address indexed to, uint256 amount, uint256 remaining);
    event FinancingRequested(uint256 indexed id, address indexed holder, uint256 amount);
    event FinancingApproved(uint256 indexed id, bool automatic);
    event FinancingRejected(uint256 indexed id, bytes32 reason);
    event Financed(uint256 indexed id, address indexed financier, address indexed holder, uint256 advance, uint256 discount);
    event Repaid(uint256 indexed id, address indexed payee, uint256 amount);
    event Defaulted(uint256 indexed id, address indexed by, uint256 amount);

    error NotBank(address account);
    error NotEnterprise(address account);
    error NotHolder(uint256 id, address account);
    error NotDebtor(uint256 id, address account);
    error UnknownReceivable(uint256 id);
    error WrongState(uint256 id, State current);
    error AlreadyFinanced(uint256 id);
    error Expired(uint256 id, uint64 dueDate);
    error NotOverdue(uint256 id, uint64 dueDate);
    error DueDateNotInFuture(uint64 dueDate);
    error InvalidAmount(uint256 amount);
    error InvalidSplit(uint256 id, uint256 part, uint256 amount);
    error InvalidRecipient(address to);
    error DocumentAlreadyUsed(bytes32 documentHash, uint256 id);
    error InvalidTerms(uint16 advanceBps);

    modifier onlyBank() {
        if (msg.sender != bank) revert NotBank(msg.sender);
        _;
    }

    constructor() {
        bank = msg.sender;
    }

    // ----- bank administration -------------------------------------------------------------

    /// @notice Register (or rename) an enterprise that may create, hold or receive receivables.
    /// @param account The enterprise's address.
    /// @param name A readable name.
    function registerEnterprise(address account, string calldata name) external onlyBank {
        if (account == address(0)) revert InvalidRecipient(account);
        isEnterprise[account] = true;
        enterpriseName[account] = name;
        emit EnterpriseRegistered(account, name);
    }

    /// @notice Set a core enterprise's financing limit and terms for automatic approval.
    /// @param debtor The core enterprise whose credit backs the receivables.
    /// @param limit Total financed face value allowed at once, minor units (0 disables).
    /// @param maxTenor Longest time from application to due date approved automatically, seconds.
    /// @param advanceBps Share of face value advanced at funding, basis points (≤ 10000).
    /// @param discountBpsPerYear Discount rate per year, basis points, charged up to the due date.
    function setLimit(address debtor, uint256 limit, uint32 maxTenor, uint16 advanceBps, uint16 discountBpsPerYear)
        external
        onlyBank
    {
        if (!isEnterprise[debtor]) revert NotEnterprise(debtor);
        if (advanceBps == 0 || advanceBps > BPS) revert InvalidTerms(advanceBps);
        Terms storage t = terms[debtor];
        t.limit = limit;
        t.maxTenor = maxTenor;
        t.advanceBps = advanceBps;
        t.discountBpsPerYear = discountBpsPerYear;
        t.active = limit > 0;
        emit LimitSet(debtor, limit, maxTenor, advanceBps, discountBpsPerYear);
    }

    // ----- lifecycle -------------------------------------------------------------------------

    /// @notice The debtor records what it owes `creditor`.
    /// @param creditor The supplier owed the money (a registered enterprise).
    /// @param amount Face value, minor units (> 0).
    /// @param dueDate When the debtor pays, unix seconds (in the future).
    /// @param documentHash keccak256 of the invoice/contract document; usable once.
    /// @return id The new receivable's id.
    function create(address creditor, uint256 amount, uint64 dueDate, bytes32 documentHash)
        external
        returns (uint256 id)
    {
        if (!isEnterprise[msg.sender]) revert NotEnterprise(msg.sender);
        if (!isEnterprise[creditor]) revert NotEnterprise(creditor);
        if (creditor == msg.sender) revert InvalidRecipient(creditor);
        if (amount == 0) revert InvalidAmount(amount);
        if (dueDate <= block.timestamp) revert DueDateNotInFuture(dueDate);
        uint256 used = receivableOfDocument[documentHash];
        if (used != 0) revert DocumentAlreadyUsed(documentHash, used);
        id = ++receivableCount;
        receivableOfDocument[documentHash] = id;
        Receivable storage r = _receivables[id];
        r.debtor = msg.sender;
        r.holder = creditor;
        r.amount = amount;
        r.dueDate = dueDate;
        r.createdAt = uint64(block.timestamp);
        r.documentHash = documentHash;
        r.state = State.Created;
        _titles[id].push(creditor);
        emit ReceivableCreated(id, msg.sender, creditor, amount, dueDate, documentHash);
    }

    /// @notice The holder passes the whole receivable to its own supplier.
    /// @param id The receivable.
    /// @param to The new holder (a registered enterprise).
    function transfer(uint256 id, address to) external {
        Receivable storage r = _transferable(id, to);
        emit Transferred(id, r.holder, to);
        r.holder = to;
        _titles[id].push(to);
    }

    /// @notice The holder passes `part` of the receivable to its own supplier as a new receivable.
    /// @dev The parent keeps `amount - part`; the child inherits debtor, due date, document and the
    ///      parent's title history. Amounts are conserved.
    /// @return childId The new receivable's id.
    function split(uint256 id, address to, uint256 part) external returns (uint256 childId) {
        Receivable storage r = _transferable(id, to);
        if (part == 0 || part >= r.amount) revert InvalidSplit(id, part, r.amount);
        r.amount -= part;
        childId = ++receivableCount;
        Receivable storage c = _receivables[childId];
        c.debtor = r.debtor;
        c.holder = to;
        c.amount = part;
        c.dueDate = r.dueDate;
        c.createdAt = uint64(block.timestamp);
        c.documentHash = r.documentHash;
        c.parentId = id;
        c.state = State.Created;
        address[] storage title = _titles[childId];
        address[] storage parentTitle = _titles[id];
        for (uint256 i = 0; i < parentTitle.length; ++i) title.push(parentTitle[i]);
        title.push(to);
        _children[id].push(childId);
        emit Split(id, childId, to, part, r.amount);
    }

    /// @notice The holder applies for financing; approved at once when within the debtor's
    ///         remaining limit and terms, else left for the bank to decide.
    /// @param id The receivable.
    function applyForFinancing(uint256 id) external {
        Receivable storage r = _existing(id);
        if (msg.sender != r.holder) revert NotHolder(id, msg.sender);
        _requireOpen(id, r);
        if (block.timestamp >= r.dueDate) revert Expired(id, r.dueDate);
        r.state = State.FinancingRequested;
        emit FinancingRequested(id, msg.sender, r.amount);
        Terms storage t = terms[r.debtor];
        if (t.active && t.used + r.amount <= t.limit && r.dueDate - block.timestamp <= t.maxTenor) {
            t.used += r.amount;
            r.state = State.Approved;
            emit FinancingApproved(id, true);
        }
    }

    /// @notice The bank approves a pending application (beyond the automatic limit).
    function approve(uint256 id) external onlyBank {
        Receivable storage r = _existing(id);
        if (r.state != State.FinancingRequested) _wrongState(id, r);
        if (block.timestamp >= r.dueDate) revert Expired(id, r.dueDate);
        terms[r.debtor].used += r.amount;
        r.state = State.Approved;
        emit FinancingApproved(id, false);
    }

    /// @notice The bank rejects a pending application; the holder may apply again later.
    /// @param reason A short reason code (≤ 32 bytes).
    function reject(uint256 id, bytes32 reason) external onlyBank {
        Receivable storage r = _existing(id);
        if (r.state != State.FinancingRequested) _wrongState(id, r);
        r.state = State.Rejected;
        emit FinancingRejected(id, reason);
    }

    /// @notice The bank funds an approved receivable, recording the advance and the discount.
    /// @return advance What the holder receives now, minor units.
    /// @return discount What the bank keeps for the time to the due date, minor units.
    function fund(uint256 id) external onlyBank returns (uint256 advance, uint256 discount) {
        Receivable storage r = _existing(id);
        if (r.state != State.Approved) _wrongState(id, r);
        if (block.timestamp >= r.dueDate) revert Expired(id, r.dueDate);
        Terms storage t = terms[r.debtor];
        uint256 advanceBps = t.advanceBps == 0 ? BPS : t.advanceBps;
        uint256 gross = (r.amount * advanceBps) / BPS;
        discount = (gross * t.discountBpsPerYear * (r.dueDate - block.timestamp)) / (uint256(BPS) * YEAR);
        advance = gross - discount;
        r.advance = advance;
        r.discount = discount;
        r.financier = msg.sender;
        r.fundedAt = uint64(block.timestamp);
        r.state = State.Financed;
        emit Financed(id, msg.sender, r.holder, advance, discount);
    }

    /// @notice The debtor pays the face value: to the financier when financed, else the holder.
    function repay(uint256 id) external {
        Receivable storage r = _existing(id);
        if (msg.sender != r.debtor) revert NotDebtor(id, msg.sender);
        State s = r.state;
        if (s == State.Repaid || s == State.Defaulted) _wrongState(id, r);
        _release(r);
        r.state = State.Repaid;
        address payee = s == State.Financed ? r.financier : r.holder;
        emit Repaid(id, payee, r.amount);
    }

    /// @notice Anyone may mark an unpaid receivable defaulted once its due date has passed.
    function markDefaulted(uint256 id) external {
        Receivable storage r = _existing(id);
        if (r.state == State.Repaid || r.state == State.Defaulted) _wrongState(id, r);
        if (block.timestamp <= r.dueDate) revert NotOverdue(id, r.dueDate);
        _release(r);
        r.state = State.Defaulted;
        emit Defaulted(id, msg.sender, r.amount);
    }

    // ----- views -----------------------------------------------------------------------------

    /// @notice The receivable with `id`.
    function receivable(uint256 id) external view returns (Receivable memory) {
        return _existing(id);
    }

    /// @notice Every holder from the original creditor to the current holder.
    function titleHistory(uint256 id) external view returns (address[] memory) {
        _existing(id);
        return _titles[id];
    }

    /// @notice Receivables split off `id`.
    function children(uint256 id) external view returns (uint256[] memory) {
        _existing(id);
        return _children[id];
    }

    /// @notice What remains of `debtor`'s automatic-approval limit.
    function remainingLimit(address debtor) external view returns (uint256) {
        Terms storage t = terms[debtor];
        return t.used >= t.limit ? 0 : t.limit - t.used;
    }

    // ----- internal --------------------------------------------------------------------------

    function _existing(uint256 id) private view returns (Receivable storage r) {
        r = _receivables[id];
        if (r.state == State.None) revert UnknownReceivable(id);
    }

    /// @dev Created or Rejected: the holder may still apply, transfer or split.
    function _requireOpen(uint256 id, Receivable storage r) private view {
        State s = r.state;
        if (s != State.Created && s != State.Rejected) _wrongState(id, r);
    }

    function _transferable(uint256 id, address to) private view returns (Receivable storage r) {
        r = _existing(id);
        if (msg.sender != r.holder) revert NotHolder(id, msg.sender);
        _requireOpen(id, r);
        if (block.timestamp >= r.dueDate) revert Expired(id, r.dueDate);
        if (!isEnterprise[to]) revert NotEnterprise(to);
        if (to == r.holder || to == r.debtor) revert InvalidRecipient(to);
    }

    /// @dev Financing in progress or done: say so plainly, else report the state.
    function _wrongState(uint256 id, Receivable storage r) private view {
        if (r.state == State.Financed || r.state == State.Approved) revert AlreadyFinanced(id);
        revert WrongState(id, r.state);
    }

    /// @dev Give back the limit an approved or financed receivable was using.
    function _release(Receivable storage r) private {
        if (r.state == State.Approved || r.state == State.Financed) {
            Terms storage t = terms[r.debtor];
            t.used = t.used >= r.amount ? t.used - r.amount : 0;
        }
    }
}
