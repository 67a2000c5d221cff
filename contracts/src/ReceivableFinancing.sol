// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title ReceivableFinancing
/// @notice Supply-chain receivables on a shared chain: a core enterprise (debtor) records what it
///         owes once, the holder applies for financing, the bank approves and funds, the debtor
///         repays (late repayment of a defaulted receivable included), and the bank or its
///         servicer declares a default only after the due date plus a grace period. Receivables
///         circulate (transfer, split) to other suppliers with the chain of title kept on chain.
///         Applications within the debtor's limit and terms are approved by the contract itself;
///         the bank approves beyond the automatic rules only within the limit, and going over the
///         limit takes the admin's explicit, logged override.
/// @dev Roles (OpenZeppelin AccessControl; DEFAULT_ADMIN_ROLE administers all of them):
///      DEFAULT_ADMIN_ROLE = the bank's administration (onboards parties, sets limits and the
///      grace period, overrides limits), FINANCIER_ROLE = approves, rejects and funds,
///      SERVICER_ROLE = declares defaults, DEBTOR_ROLE = a core enterprise that records what it
///      owes, SUPPLIER_ROLE = may hold, receive and finance receivables.
///      Amounts are integer minor units (fen/cents); money moves off chain, the chain records it.
contract ReceivableFinancing is AccessControl {
    /// @notice Role of the bank's accounts that approve, reject and fund.
    bytes32 public constant FINANCIER_ROLE = keccak256("FINANCIER_ROLE");
    /// @notice Role of the accounts the bank appoints to declare defaults (besides financiers).
    bytes32 public constant SERVICER_ROLE = keccak256("SERVICER_ROLE");
    /// @notice Role of core enterprises: they record receivables they owe.
    bytes32 public constant DEBTOR_ROLE = keccak256("DEBTOR_ROLE");
    /// @notice Role of suppliers: they hold, receive and finance receivables.
    bytes32 public constant SUPPLIER_ROLE = keccak256("SUPPLIER_ROLE");

    /// @notice Largest face value of one receivable, minor units (10 trillion yuan in fen).
    uint256 public constant MAX_AMOUNT = 1e15;
    /// @notice Largest financing limit of one debtor, minor units.
    uint256 public constant MAX_LIMIT = 1e18;
    /// @notice Longest time from now to a receivable's due date (ten years).
    uint64 public constant MAX_TERM = 3650 days;
    /// @notice Longest grace period the bank may set (one year).
    uint32 public constant MAX_GRACE_PERIOD = 365 days;
    /// @notice Longest party name, bytes of UTF-8.
    uint256 public constant MAX_NAME_BYTES = 64;

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

    /// @dev Per-debtor financing limit and terms, set by the bank's admin.
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

    /// @notice Seconds after the due date before a default may be declared.
    uint32 public gracePeriod = 30 days;
    /// @notice Receivables created so far (ids run from 1).
    uint256 public receivableCount;
    /// @notice Readable name of an onboarded party.
    mapping(address account => string) public partyName;
    /// @notice Limit and terms per debtor.
    mapping(address debtor => Terms) public terms;
    /// @notice The receivable a document backs (0 if none): a document finances once.
    mapping(bytes32 documentHash => uint256 id) public receivableOfDocument;
    mapping(uint256 id => Receivable) private _receivables;
    mapping(uint256 id => address[]) private _titles;
    mapping(uint256 id => uint256[]) private _children;

    /// @notice The admin onboarded a party with a role.
    /// @param account The party's account.
    /// @param role The role granted (DEBTOR_ROLE, SUPPLIER_ROLE, FINANCIER_ROLE or SERVICER_ROLE).
    /// @param name Its readable name.
    event PartyOnboarded(address indexed account, bytes32 indexed role, string name);
    /// @notice The grace period before defaults changed.
    /// @param previous Seconds before.
    /// @param current Seconds now.
    event GracePeriodSet(uint32 previous, uint32 current);
    /// @notice A debtor's limit and terms were set.
    /// @param debtor The core enterprise.
    /// @param limit Total financed at once, minor units.
    /// @param maxTenor Longest application-to-due time approved automatically, seconds.
    /// @param advanceBps Share of face value advanced, basis points.
    /// @param discountBpsPerYear Yearly discount rate, basis points.
    event LimitSet(address indexed debtor, uint256 limit, uint32 maxTenor, uint16 advanceBps, uint16 discountBpsPerYear);
    /// @notice A debtor recorded a receivable.
    /// @param id The new receivable.
    /// @param debtor Who owes.
    /// @param creditor Who is owed (the first holder).
    /// @param amount Face value, minor units.
    /// @param dueDate Unix seconds.
    /// @param documentHash keccak256 of the invoice/contract.
    event ReceivableCreated(uint256 indexed id, address indexed debtor, address indexed creditor, uint256 amount, uint64 dueDate, bytes32 documentHash);
    /// @notice The whole receivable changed hands.
    /// @param id The receivable.
    /// @param from The previous holder.
    /// @param to The new holder.
    event Transferred(uint256 indexed id, address indexed from, address indexed to);
    /// @notice Part of a receivable became a new receivable.
    /// @param parentId The receivable split.
    /// @param childId The new receivable.
    /// @param to Its holder.
    /// @param amount Its face value.
    /// @param remaining What the parent keeps.
    event Split(uint256 indexed parentId, uint256 indexed childId, address indexed to, uint256 amount, uint256 remaining);
    /// @notice The holder applied for financing.
    /// @param id The receivable.
    /// @param holder The applicant.
    /// @param amount Face value.
    event FinancingRequested(uint256 indexed id, address indexed holder, uint256 amount);
    /// @notice An application was approved.
    /// @param id The receivable.
    /// @param automatic True when approved by the contract's rules, false by the bank.
    event FinancingApproved(uint256 indexed id, bool automatic);
    /// @notice The admin approved an application beyond the debtor's remaining limit.
    /// @param id The receivable.
    /// @param debtor Whose limit was exceeded.
    /// @param by The admin account.
    /// @param amount Face value approved.
    /// @param remaining What was left of the limit before.
    /// @param reason Short reason code (≤ 32 bytes).
    event LimitOverridden(uint256 indexed id, address indexed debtor, address indexed by, uint256 amount, uint256 remaining, bytes32 reason);
    /// @notice An application was rejected.
    /// @param id The receivable.
    /// @param reason Short reason code (≤ 32 bytes).
    event FinancingRejected(uint256 indexed id, bytes32 reason);
    /// @notice The bank funded a receivable.
    /// @param id The receivable.
    /// @param financier The funding account.
    /// @param holder Who received the advance.
    /// @param advance Paid now, minor units.
    /// @param discount Kept for the time to the due date, minor units.
    event Financed(uint256 indexed id, address indexed financier, address indexed holder, uint256 advance, uint256 discount);
    /// @notice The debtor paid the face value.
    /// @param id The receivable.
    /// @param payee The financier when it was financed, else the holder.
    /// @param amount Face value, minor units.
    /// @param afterDefault True when paid after a default was declared (late repayment).
    event Repaid(uint256 indexed id, address indexed payee, uint256 amount, bool afterDefault);
    /// @notice A default was declared.
    /// @param id The receivable.
    /// @param by The financier or servicer who declared it.
    /// @param amount Face value unpaid.
    event Defaulted(uint256 indexed id, address indexed by, uint256 amount);

    /// @notice `account` does not hold `role`, which this step needs of it.
    /// @param account The account.
    /// @param role The role it lacks.
    error NotParty(address account, bytes32 role);
    /// @notice Only the current holder may do this.
    /// @param id The receivable.
    /// @param account The caller.
    error NotHolder(uint256 id, address account);
    /// @notice Only the debtor of record may repay.
    /// @param id The receivable.
    /// @param account The caller.
    error NotDebtor(uint256 id, address account);
    /// @notice No receivable has this id.
    /// @param id The id asked for.
    error UnknownReceivable(uint256 id);
    /// @notice The receivable is not in a state that allows this step.
    /// @param id The receivable.
    /// @param current Its state.
    error WrongState(uint256 id, State current);
    /// @notice The receivable is approved or financed already.
    /// @param id The receivable.
    error AlreadyFinanced(uint256 id);
    /// @notice The due date has passed.
    /// @param id The receivable.
    /// @param dueDate Its due date.
    error Expired(uint256 id, uint64 dueDate);
    /// @notice A default may be declared only after the due date plus the grace period.
    /// @param id The receivable.
    /// @param dueDate Its due date.
    /// @param defaultableAfter The first moment a default may be declared is after this time.
    error NotOverdue(uint256 id, uint64 dueDate, uint64 defaultableAfter);
    /// @notice The due date must be in the future.
    /// @param dueDate The date given.
    /// @param now_ The block time.
    error DueDateNotInFuture(uint64 dueDate, uint64 now_);
    /// @notice The due date is further away than MAX_TERM.
    /// @param dueDate The date given.
    /// @param latest The latest due date accepted now.
    error DueDateTooFar(uint64 dueDate, uint64 latest);
    /// @notice An amount outside 1..max.
    /// @param amount The amount given.
    /// @param max The largest accepted.
    error AmountOutOfRange(uint256 amount, uint256 max);
    /// @notice A split part must be more than 0 and less than the receivable's amount.
    /// @param id The receivable.
    /// @param part The part asked for.
    /// @param amount The receivable's amount.
    error InvalidSplit(uint256 id, uint256 part, uint256 amount);
    /// @notice This account cannot receive the receivable (itself, its debtor or the zero address).
    /// @param to The account.
    error InvalidRecipient(address to);
    /// @notice The document already backs a receivable.
    /// @param documentHash The document's keccak256.
    /// @param id The receivable it backs.
    error DocumentAlreadyUsed(bytes32 documentHash, uint256 id);
    /// @notice A receivable needs a document hash.
    error EmptyDocument();
    /// @notice Terms out of range.
    /// @param advanceBps Advance rate given (1..10000).
    /// @param discountBpsPerYear Discount rate given (0..10000).
    error InvalidTerms(uint16 advanceBps, uint16 discountBpsPerYear);
    /// @notice A limit above MAX_LIMIT.
    /// @param limit The limit given.
    /// @param max The largest accepted.
    error LimitOutOfRange(uint256 limit, uint256 max);
    /// @notice Approving would exceed the debtor's limit; the admin may override with a reason.
    /// @param id The receivable.
    /// @param debtor Its debtor.
    /// @param amount Its face value.
    /// @param remaining What is left of the limit.
    error LimitExceeded(uint256 id, address debtor, uint256 amount, uint256 remaining);
    /// @notice An override needs a reason.
    /// @param id The receivable.
    error MissingReason(uint256 id);
    /// @notice The debtor has no terms: the bank sets them (`setLimit`) before funding.
    /// @param debtor The debtor.
    error NoTerms(address debtor);
    /// @notice The discount would eat the whole advance.
    /// @param id The receivable.
    /// @param gross Face value times the advance rate.
    /// @param discount The discount for the time to the due date.
    error DiscountExceedsAdvance(uint256 id, uint256 gross, uint256 discount);
    /// @notice A grace period above MAX_GRACE_PERIOD.
    /// @param seconds_ The period given.
    /// @param max The longest accepted.
    error GracePeriodTooLong(uint32 seconds_, uint32 max);
    /// @notice Only the four party roles can be onboarded.
    /// @param role The role given.
    error UnknownRole(bytes32 role);
    /// @notice A party name must be 1..MAX_NAME_BYTES bytes.
    /// @param length The name's length in bytes.
    error InvalidName(uint256 length);

    /// @notice The deployer becomes the bank: admin, financier and servicer.
    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
        _grantRole(FINANCIER_ROLE, msg.sender);
        _grantRole(SERVICER_ROLE, msg.sender);
    }

    // ----- bank administration -------------------------------------------------------------

    /// @notice Onboard (or rename) a party and grant it one role.
    /// @dev Only DEFAULT_ADMIN_ROLE. Revoke with `revokeRole`; the name stays for the record.
    /// @param account The party's account.
    /// @param role DEBTOR_ROLE, SUPPLIER_ROLE, FINANCIER_ROLE or SERVICER_ROLE.
    /// @param name A readable name (1..64 bytes).
    function onboard(address account, bytes32 role, string calldata name) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (account == address(0)) revert InvalidRecipient(account);
        if (role != DEBTOR_ROLE && role != SUPPLIER_ROLE && role != FINANCIER_ROLE && role != SERVICER_ROLE) {
            revert UnknownRole(role);
        }
        uint256 length = bytes(name).length;
        if (length == 0 || length > MAX_NAME_BYTES) revert InvalidName(length);
        partyName[account] = name;
        _grantRole(role, account);
        emit PartyOnboarded(account, role, name);
    }

    /// @notice Set how long after the due date a default may first be declared.
    /// @dev Only DEFAULT_ADMIN_ROLE.
    /// @param seconds_ The grace period (≤ MAX_GRACE_PERIOD).
    function setGracePeriod(uint32 seconds_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (seconds_ > MAX_GRACE_PERIOD) revert GracePeriodTooLong(seconds_, MAX_GRACE_PERIOD);
        emit GracePeriodSet(gracePeriod, seconds_);
        gracePeriod = seconds_;
    }

    /// @notice Set a core enterprise's financing limit and terms.
    /// @dev Only DEFAULT_ADMIN_ROLE. The terms are required before any of its receivables is funded.
    /// @param debtor The core enterprise whose credit backs the receivables.
    /// @param limit Total financed face value allowed at once, minor units (0 disables approval).
    /// @param maxTenor Longest time from application to due date approved automatically, seconds.
    /// @param advanceBps Share of face value advanced at funding, basis points (1..10000).
    /// @param discountBpsPerYear Discount rate per year, basis points (≤ 10000), charged up to the due date.
    function setLimit(address debtor, uint256 limit, uint32 maxTenor, uint16 advanceBps, uint16 discountBpsPerYear)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (!hasRole(DEBTOR_ROLE, debtor)) revert NotParty(debtor, DEBTOR_ROLE);
        if (advanceBps == 0 || advanceBps > BPS || discountBpsPerYear > BPS) {
            revert InvalidTerms(advanceBps, discountBpsPerYear);
        }
        if (limit > MAX_LIMIT) revert LimitOutOfRange(limit, MAX_LIMIT);
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
    /// @dev Only DEBTOR_ROLE; the creditor must hold SUPPLIER_ROLE.
    /// @param creditor The supplier owed the money.
    /// @param amount Face value, minor units (1..MAX_AMOUNT).
    /// @param dueDate When the debtor pays, unix seconds (in the future, within MAX_TERM).
    /// @param documentHash keccak256 of the invoice/contract document; usable once.
    /// @return id The new receivable's id.
    function create(address creditor, uint256 amount, uint64 dueDate, bytes32 documentHash)
        external
        onlyRole(DEBTOR_ROLE)
        returns (uint256 id)
    {
        if (creditor == msg.sender || creditor == address(0)) revert InvalidRecipient(creditor);
        if (!hasRole(SUPPLIER_ROLE, creditor)) revert NotParty(creditor, SUPPLIER_ROLE);
        if (amount == 0 || amount > MAX_AMOUNT) revert AmountOutOfRange(amount, MAX_AMOUNT);
        if (dueDate <= block.timestamp) revert DueDateNotInFuture(dueDate, uint64(block.timestamp));
        uint64 latest = uint64(block.timestamp) + MAX_TERM;
        if (dueDate > latest) revert DueDateTooFar(dueDate, latest);
        if (documentHash == bytes32(0)) revert EmptyDocument();
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

    /// @notice The holder passes the whole receivable to another supplier.
    /// @param id The receivable.
    /// @param to The new holder (holds SUPPLIER_ROLE).
    function transfer(uint256 id, address to) external {
        Receivable storage r = _transferable(id, to);
        emit Transferred(id, r.holder, to);
        r.holder = to;
        _titles[id].push(to);
    }

    /// @notice The holder passes `part` of the receivable to another supplier as a new receivable.
    /// @dev The parent keeps `amount - part`; the child inherits debtor, due date, document and the
    ///      parent's title history. Amounts are conserved.
    /// @param id The receivable.
    /// @param to Who receives the part (holds SUPPLIER_ROLE).
    /// @param part Face value split off, minor units (0 < part < amount).
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
    /// @dev The holder must still hold SUPPLIER_ROLE (a revoked party is not financed).
    /// @param id The receivable.
    function applyForFinancing(uint256 id) external {
        Receivable storage r = _existing(id);
        if (msg.sender != r.holder) revert NotHolder(id, msg.sender);
        _requireSupplier(msg.sender);
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

    /// @notice The bank approves a pending application within the debtor's remaining limit.
    /// @dev Only FINANCIER_ROLE. Beyond the limit: `LimitExceeded`; see `approveOverLimit`. A
    ///      holder revoked since it applied: `NotParty` (reject it instead).
    /// @param id The receivable.
    function approve(uint256 id) external onlyRole(FINANCIER_ROLE) {
        Receivable storage r = _pending(id);
        Terms storage t = terms[r.debtor];
        uint256 remaining = _remaining(t);
        if (!t.active || r.amount > remaining) revert LimitExceeded(id, r.debtor, r.amount, remaining);
        t.used += r.amount;
        r.state = State.Approved;
        emit FinancingApproved(id, false);
    }

    /// @notice The admin approves a pending application beyond the debtor's limit, with a reason
    ///         that is logged (`LimitOverridden`).
    /// @dev Only DEFAULT_ADMIN_ROLE.
    /// @param id The receivable.
    /// @param reason Short reason code (≤ 32 bytes, non-zero).
    function approveOverLimit(uint256 id, bytes32 reason) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (reason == bytes32(0)) revert MissingReason(id);
        Receivable storage r = _pending(id);
        Terms storage t = terms[r.debtor];
        emit LimitOverridden(id, r.debtor, msg.sender, r.amount, _remaining(t), reason);
        t.used += r.amount;
        r.state = State.Approved;
        emit FinancingApproved(id, false);
    }

    /// @notice The bank rejects a pending application; the holder may apply again later.
    /// @dev Only FINANCIER_ROLE.
    /// @param id The receivable.
    /// @param reason A short reason code (≤ 32 bytes).
    function reject(uint256 id, bytes32 reason) external onlyRole(FINANCIER_ROLE) {
        Receivable storage r = _existing(id);
        if (r.state != State.FinancingRequested) _wrongState(id, r);
        r.state = State.Rejected;
        emit FinancingRejected(id, reason);
    }

    /// @notice The bank funds an approved receivable at the debtor's terms, recording the advance
    ///         and the discount.
    /// @dev Only FINANCIER_ROLE; the holder must still hold SUPPLIER_ROLE (`NotParty`: a party
    ///      revoked after its application was approved is not funded) and the debtor must have
    ///      terms (`NoTerms`).
    /// @param id The receivable.
    /// @return advance What the holder receives now, minor units.
    /// @return discount What the bank keeps for the time to the due date, minor units.
    function fund(uint256 id) external onlyRole(FINANCIER_ROLE) returns (uint256 advance, uint256 discount) {
        Receivable storage r = _existing(id);
        if (r.state != State.Approved) _wrongState(id, r);
        if (block.timestamp >= r.dueDate) revert Expired(id, r.dueDate);
        _requireSupplier(r.holder);
        Terms storage t = terms[r.debtor];
        if (t.advanceBps == 0) revert NoTerms(r.debtor);
        uint256 gross = (r.amount * t.advanceBps) / BPS;
        discount = (gross * t.discountBpsPerYear * (r.dueDate - block.timestamp)) / (uint256(BPS) * YEAR);
        if (discount >= gross) revert DiscountExceedsAdvance(id, gross, discount);
        advance = gross - discount;
        r.advance = advance;
        r.discount = discount;
        r.financier = msg.sender;
        r.fundedAt = uint64(block.timestamp);
        r.state = State.Financed;
        emit Financed(id, msg.sender, r.holder, advance, discount);
    }

    /// @notice The debtor pays the face value: to the financier when financed, else the holder.
    ///         A defaulted receivable may still be repaid (late); the event says so.
    /// @param id The receivable.
    function repay(uint256 id) external {
        Receivable storage r = _existing(id);
        if (msg.sender != r.debtor) revert NotDebtor(id, msg.sender);
        State s = r.state;
        if (s == State.Repaid) _wrongState(id, r);
        _release(r);
        r.state = State.Repaid;
        address payee = r.financier != address(0) ? r.financier : r.holder;
        emit Repaid(id, payee, r.amount, s == State.Defaulted);
    }

    /// @notice The bank (a financier) or its appointed servicer declares an unpaid receivable
    ///         defaulted, once the due date plus the grace period has passed.
    /// @param id The receivable.
    function markDefaulted(uint256 id) external {
        if (!hasRole(FINANCIER_ROLE, msg.sender) && !hasRole(SERVICER_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, SERVICER_ROLE);
        }
        Receivable storage r = _existing(id);
        if (r.state == State.Repaid || r.state == State.Defaulted) _wrongState(id, r);
        uint64 after_ = r.dueDate + gracePeriod;
        if (block.timestamp <= after_) revert NotOverdue(id, r.dueDate, after_);
        _release(r);
        r.state = State.Defaulted;
        emit Defaulted(id, msg.sender, r.amount);
    }

    // ----- views -----------------------------------------------------------------------------

    /// @notice The receivable with `id`.
    /// @param id The receivable.
    /// @return The stored record.
    function receivable(uint256 id) external view returns (Receivable memory) {
        return _existing(id);
    }

    /// @notice Every holder from the original creditor to the current holder.
    /// @param id The receivable.
    /// @return Holders in order.
    function titleHistory(uint256 id) external view returns (address[] memory) {
        _existing(id);
        return _titles[id];
    }

    /// @notice Receivables split off `id`.
    /// @param id The receivable.
    /// @return Child ids in order.
    function children(uint256 id) external view returns (uint256[] memory) {
        _existing(id);
        return _children[id];
    }

    /// @notice What remains of `debtor`'s limit.
    /// @param debtor The core enterprise.
    /// @return Minor units still available.
    function remainingLimit(address debtor) external view returns (uint256) {
        return _remaining(terms[debtor]);
    }

    // ----- internal --------------------------------------------------------------------------

    function _existing(uint256 id) private view returns (Receivable storage r) {
        r = _receivables[id];
        if (r.state == State.None) revert UnknownReceivable(id);
    }

    function _pending(uint256 id) private view returns (Receivable storage r) {
        r = _existing(id);
        if (r.state != State.FinancingRequested) _wrongState(id, r);
        if (block.timestamp >= r.dueDate) revert Expired(id, r.dueDate);
        _requireSupplier(r.holder);
    }

    /// @dev A party the bank revoked is not financed, whenever it applied.
    function _requireSupplier(address holder) private view {
        if (!hasRole(SUPPLIER_ROLE, holder)) revert NotParty(holder, SUPPLIER_ROLE);
    }

    function _remaining(Terms storage t) private view returns (uint256) {
        return t.used >= t.limit ? 0 : t.limit - t.used;
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
        if (to == r.holder || to == r.debtor || to == address(0)) revert InvalidRecipient(to);
        if (!hasRole(SUPPLIER_ROLE, to)) revert NotParty(to, SUPPLIER_ROLE);
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
